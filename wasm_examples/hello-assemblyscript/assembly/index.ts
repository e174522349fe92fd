// Hello in AssemblyScript. @assemblyscript/wasi-shim maps `process` and
// `console` onto WASI preview 1 and exports `_start`.
const env = process.env;
const path = env.has("PATH_INFO") && env.get("PATH_INFO").length > 0 ? env.get("PATH_INFO") : "/";
const method = env.has("REQUEST_METHOD") ? env.get("REQUEST_METHOD") : "GET";

process.stdout.write("Content-Type: text/plain; charset=utf-8\n\n");
process.stdout.write("Hello from AssemblyScript! " + method + " " + path + "\n");
