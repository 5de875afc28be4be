// Builds one JavaScript guest into a WebAssembly component with componentize-js, from
// moat's own WIT world, then checks what the component imports.
//
//   node componentize.mjs SOURCE.js WIT_DIR WORLD OUTPUT.wasm
//
// plugins/js/build.sh copies this script next to the pinned node_modules it installs
// (target/js-builder) and runs it once per guest.
//
// Features: `http` and `fetch-event` are disabled, so the component does not import
// `wasi:http` (`fetch` is gone; moat's own `http` interface is the way out, when granted).
// `stdio`, `random` and `clocks` stay: moat gives every guest a restricted WASI 0.2 for
// them (standard output and error go to the call's log; nothing preopened, empty
// environment, no network). Without `stdio` an uncaught exception traps without a message.
import { writeFile } from 'node:fs/promises';
import { componentize } from '@bytecodealliance/componentize-js';
import { componentWit } from '@bytecodealliance/jco';

const [sourcePath, witPath, worldName, outputPath] = process.argv.slice(2);
if (!outputPath) {
    console.error('usage: node componentize.mjs SOURCE.js WIT_DIR WORLD OUTPUT.wasm');
    process.exit(2);
}

const { component } = await componentize({
    sourcePath,
    witPath,
    worldName,
    disableFeatures: ['http', 'fetch-event'],
});

// What the component imports, as wasm-tools prints it: `import wasi:cli/stdout@0.2.3;`.
// Only moat's interfaces and WASI 0.2 are allowed, and no WASI the host does not give.
const wit = await componentWit(component);
const imports = [...wit.matchAll(/^\s*import ([a-z0-9:\/@.-]+);$/gm)].map((m) => m[1]);
const refused = imports.filter(
    (name) => !/^moat:plugin\/[a-z-]+@/.test(name) &&
        !/^wasi:(cli|clocks|filesystem|io|random|sockets)\/[a-z-]+@0\.2\.\d+$/.test(name),
);
if (refused.length > 0) {
    const names = refused.join(', ');
    console.error(`${sourcePath}: the component imports what moat does not give: ${names}`);
    process.exit(1);
}
if (process.env.MOAT_JS_SHOW_IMPORTS) {
    console.error(`${sourcePath} imports:\n  ${imports.join('\n  ')}`);
}
await writeFile(outputPath, component);
