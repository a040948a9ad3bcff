// A bare client on the official TypeScript SDK 1.x (what many desktop MCP hosts are built on).
// Usage: node sdk_client.mjs URL            (streamable HTTP)
//        node sdk_client.mjs -- CMD ARGS...  (stdio: starts the server itself)
// Reads a JSON list of calls on stdin, [{"tool": NAME, "args": {...}}, ...], runs them in order
// in one session and prints one JSON list: per call, what the model would be shown ("text": the
// result's text content, or the message of the error the SDK raised instead), "isError", and
// "threw" (true when the SDK refused the result rather than returning it).
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { StdioClientTransport } from "@modelcontextprotocol/sdk/client/stdio.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const argv = process.argv.slice(2);
let transport;
if (argv[0] === "--") {
  transport = new StdioClientTransport({
    command: argv[1],
    args: argv.slice(2),
    env: process.env,
    stderr: "ignore",
  });
} else {
  transport = new StreamableHTTPClientTransport(new URL(argv[0]));
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const calls = JSON.parse(input);

const client = new Client({ name: "mcp-ble-tests", version: "1.0.0" });
await client.connect(transport);
// Hosts list the tools first; the SDK then checks each result against its output schema.
await client.listTools();
const out = [];
for (const call of calls) {
  try {
    const result = await client.callTool({ name: call.tool, arguments: call.args ?? {} });
    const text = (result.content ?? [])
      .filter((c) => c.type === "text")
      .map((c) => c.text)
      .join("\n");
    out.push({ text, isError: result.isError === true, threw: false });
  } catch (err) {
    out.push({ text: String(err?.message ?? err), isError: true, threw: true });
  }
}
await client.close();
process.stdout.write(JSON.stringify(out) + "\n");
