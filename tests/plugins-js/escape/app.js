// A JavaScript tool that tries to get out of its sandbox, and tools that fail on purpose.
// Built by plugins/js/build.sh into target/wasm/tests-js/escape.wasm (world `tool-plugin`);
// tests/all/javascript.rs checks what each reports.
//
// - js_globals: which globals a way out could come from exist (Node's `process` and
//   `require`, `fetch`, `WebSocket`, ...), and which of the web platform's the engine has.
// - js_import, js_fetch: a dynamic `import('node:fs')`, a `fetch` of a URL; each reports
//   what happened (or the call traps).
// - js_runtime: what the runtime does have: clocks, randomness, console output.
// - js_fail: throws the WIT error variant `failed` (a tool error, not a trap).
// - js_crash: throws a plain `Error`, which is not a `tool-error`: the call traps.
// - js_capability: uses moat's own interfaces (`log`, `fs`) and reports the error of `fs`.
// - js_spin, js_hog: loop forever, allocate without end: the call's budgets stop them.

import { log } from 'moat:plugin/log@0.1.0';
import { open } from 'moat:plugin/fs@0.1.0';

const TOOLS = {
    js_globals: 'Reports which of the globals a way out could come from exist.',
    js_import: 'Tries to import a module at run time (module).',
    js_fetch: 'Tries to fetch a URL (url).',
    js_runtime: 'Reports the clock, a random number, and writes to the console.',
    js_fail: 'Fails with a tool error (message).',
    js_crash: 'Throws an Error that is not a tool error (message).',
    js_capability: 'Logs, then opens an fs grant it does not have; reports the error it caught.',
    js_spin: 'Loops forever.',
    js_hog: 'Allocates memory until it cannot.',
};

async function attempt(action) {
    try {
        return { ok: true, value: String(await action()) };
    } catch (error) {
        return { ok: false, error: String(error) };
    }
}

function globals() {
    const names = [
        // ways out, or their building blocks
        'process', 'require', 'Buffer', 'Deno', 'fetch', 'WebAssembly', 'XMLHttpRequest',
        'WebSocket',
        // what the engine has, and lacks
        'TextEncoder', 'TextDecoder', 'URL', 'atob', 'crypto', 'structuredClone', 'setTimeout',
        'Intl',
    ];
    const found = Object.fromEntries(names.map((name) => [name, typeof globalThis[name]]));
    found.normalize = typeof String.prototype.normalize;
    return found;
}

function runtime() {
    console.log('hello from console.log');
    console.error('hello from console.error');
    return { now: Date.now(), random: Math.random(), performance: performance.now() };
}

export const tool = {
    describe() {
        return Object.entries(TOOLS).map(([name, description]) => ({
            name,
            description,
            inputSchema: '{"type": "object"}',
            outputSchema: undefined,
            effects: [],
            stakes: undefined,
            version: '0.1.0',
        }));
    },

    async call(name, args) {
        const request = JSON.parse(args);
        switch (name) {
            case 'js_globals':
                return JSON.stringify(globals());
            case 'js_import': {
                const module = request.module ?? 'node:fs';
                return JSON.stringify(await attempt(async () => Object.keys(await import(module))));
            }
            case 'js_fetch': {
                const url = request.url ?? 'http://127.0.0.1:9/';
                return JSON.stringify(await attempt(async () => (await fetch(url)).status));
            }
            case 'js_runtime':
                return JSON.stringify(runtime());
            case 'js_fail':
                throw { tag: 'failed', val: request.message ?? 'failed on purpose' };
            case 'js_crash':
                throw new Error(request.message ?? 'crashed on purpose');
            case 'js_capability': {
                log('info', 'about to open grant `data`');
                try {
                    open(request.grant ?? 'data');
                    return JSON.stringify({ opened: true });
                } catch (error) {
                    const caught = { type: error?.constructor?.name, message: String(error) };
                    return JSON.stringify({ opened: false, ...caught, payload: error?.payload });
                }
            }
            case 'js_spin':
                for (;;) {}
            case 'js_hog': {
                const hoard = [];
                for (;;) hoard.push(new Uint8Array(1 << 20).fill(1));
            }
            default:
                throw { tag: 'invalid-input', val: `no tool \`${name}\` here` };
        }
    },
};
