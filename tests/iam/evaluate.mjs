// Evaluates IAM requests with @cloud-copilot/iam-simulate (pinned in package.json), an
// independent IAM policy simulator, for the Rust tests (tests/src/iam.rs) that build the
// documents trailgate writes and deploys and the matrix of requests to judge them by.
//
// Input on stdin: a JSON array of {"id": "...", "simulation": <iam-simulate Simulation>}.
// Output on stdout: a JSON array, in the same order, of
//   {"id", "result": "Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied" | "Error",
//    "denied_by": ["<policy type>/<policy name>/<Sid>", ...]   (explicit denies only; the
//                 session policy's as "session/session/<Sid>"),
//    "errors": <the simulator's validation errors, for "Error">,
//    "ignored_context_keys": [...]}
// A request the simulator refuses to run (an unknown action, a malformed policy, a context key
// that does not apply) is "Error", never a verdict: the Rust side counts it as unexpected.
// Exits non-zero only when the input cannot be read.

import { getDenialReasons, runSimulation } from '@cloud-copilot/iam-simulate';

async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) {
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function deniedBy(analysis) {
  if (!analysis) {
    return [];
  }
  const reasons = getDenialReasons(analysis)
    .filter((reason) => reason.denialType === 'Explicit')
    .map((reason) =>
      [reason.policyType, reason.policyIdentifier ?? '', reason.statementId ?? `#${reason.statementIndex}`].join('/'),
    );
  // getDenialReasons leaves out the session policy's denies; they are read from its analysis.
  for (const statement of analysis.sessionAnalysis?.denyStatements ?? []) {
    reasons.push(['session', 'session', statement.statement.sid() ?? `#${statement.statement.index()}`].join('/'));
  }
  return reasons;
}

async function evaluate({ id, simulation }) {
  try {
    const response = await runSimulation(simulation, {});
    if (response.resultType === 'error') {
      return { id, result: 'Error', errors: response.errors, denied_by: [] };
    }
    const results = response.resultType === 'single' ? [response.result] : response.results;
    return {
      id,
      result: response.overallResult,
      denied_by: results.flatMap((r) => deniedBy(r.analysis)),
      ignored_context_keys: results.flatMap((r) => r.ignoredContextKeys ?? []),
    };
  } catch (error) {
    return { id, result: 'Error', errors: { message: String(error?.stack ?? error) }, denied_by: [] };
  }
}

const cases = JSON.parse(await readStdin());
const out = [];
for (const item of cases) {
  out.push(await evaluate(item));
}
process.stdout.write(JSON.stringify(out));
