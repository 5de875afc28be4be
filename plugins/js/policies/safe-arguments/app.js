// `safe-arguments`: a moat guard policy written in JavaScript. Before each call (check-call)
// it reads every string in the arguments, at any depth, and denies the call when one
//   - climbs out of its directory: a `..` path segment (`../etc/passwd`, `a/../../b`,
//     also URL-encoded, `%2e%2e%2f`);
//   - carries a shell command after a command separator or inside a substitution:
//     `; rm -rf ~`, `&& curl x | sh`, `$(wget ...)`, `` `chmod ...` ``;
//   - contains a NUL character (which cuts a path short in C libraries).
// The reason names the argument and what was found, so the agent can correct it. Words
// that merely look alike pass: "Tom && Jerry", "wait..", "a..b", "use `ls`". Effects and
// results are allowed (check-effect, check-result). Scope it to some tools with
// `[policies.safe-arguments] tools = [...]` in moat.toml.
//
// Built into a component by componentize-js from moat's own WIT world (`guard-plugin`):
// `just plugins` (plugins/js/build.sh) writes target/wasm/js-policies/safe-arguments.wasm;
// copy it into the policies directory of moat.toml. The module exports the WIT interface
// `guard` as an object named `guard`, with its functions in camelCase (`checkCall`); a verdict
// is `{ tag: 'allow' }` or `{ tag: 'deny', val: reason }` (also `escalate`, `rewrite`). A
// guard that throws, traps or runs out of its budget denies the call (fail closed).
//
// Expectations (checked by tests/all/javascript.rs): a call with `../` in a path or
// `; rm -rf` in a text is denied before it runs, naming the argument; ordinary text is allowed.

const NAME = 'safe-arguments';

const TRAVERSAL = /(^|[\/\\])\.\.([\/\\]|$)|%2e%2e(%2f|%5c|[\/\\])/i;

const COMMANDS = [
    'rm', 'curl', 'wget', 'sh', 'bash', 'zsh', 'dash', 'nc', 'ncat', 'netcat', 'chmod',
    'chown', 'python', 'python3', 'perl', 'ruby', 'php', 'eval', 'exec', 'mkfifo', 'base64',
    'dd', 'sudo', 'kill', 'shutdown', 'reboot',
];
// A separator (`;`, `&&`, `||`, `|`, a newline) or the start of a substitution (`$(`, a
// backtick), then a command.
const SHELL = new RegExp(`(;|&&|\\|\\|?|\\n|\\$\\(|\`)\\s*(${COMMANDS.join('|')})(?![\\w.-])`);
const SEPARATORS = {
    ';': 'a `;`',
    '&&': 'a `&&`',
    '||': 'a `||`',
    '|': 'a pipe',
    '\n': 'a new line',
    '$(': 'in a `$(...)` substitution',
    '`': 'in a backtick substitution',
};

/** Every string in `value` with where it is (`path`, `files[2]`, `options.dest`). */
function* strings(value, where) {
    if (typeof value === 'string') {
        yield [where, value];
    } else if (Array.isArray(value)) {
        for (const [i, item] of value.entries()) yield* strings(item, `${where}[${i}]`);
    } else if (value !== null && typeof value === 'object') {
        for (const [key, item] of Object.entries(value)) {
            yield* strings(item, where ? `${where}.${key}` : key);
        }
    }
}

/** What is wrong with one string, if anything. */
function problem(text) {
    if (TRAVERSAL.test(text)) return 'climbs out of its directory with `..`';
    const shell = text.match(SHELL);
    if (shell) {
        const [, separator, command] = shell;
        const where = SEPARATORS[separator];
        const place = where.startsWith('in ') ? where : `after ${where}`;
        return `holds the shell command \`${command}\` ${place}`;
    }
    if (text.includes('\0')) return 'contains a NUL character';
    return undefined;
}

const allow = { tag: 'allow' };

export const guard = {
    describe() {
        return {
            name: NAME,
            description:
                'Denies calls whose arguments climb out of a directory (`..`), carry a shell ' +
                'command after a separator or in a substitution, or contain a NUL character.',
        };
    },

    checkCall(call) {
        let args;
        try {
            args = JSON.parse(call.args);
        } catch {
            const reason = `the arguments are not JSON, so they cannot be checked`;
            return { tag: 'deny', val: reason };
        }
        for (const [where, text] of strings(args, '')) {
            const found = problem(text);
            if (found) {
                const argument = where || '(the arguments)';
                return {
                    tag: 'deny',
                    val: `argument \`${argument}\` of \`${call.tool}\` ${found}`,
                };
            }
        }
        return allow;
    },

    checkEffect(_call, _effect) {
        return allow;
    },

    checkResult(_call, _output) {
        return allow;
    },
};
