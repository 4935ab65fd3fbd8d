// A real OpenID provider for the tests (npm oidc-provider, OpenID Certified),
// on a loopback port it picks itself. tests/it/support/oidc.rs starts it.
//
// Usage: node oidc-provider.mjs
// It listens and prints one JSON line {"port": PORT}; until it is
// configured it answers every request 503. Then it reads one JSON line per
// configuration on stdin:
//   { "clients": [{ client_id, client_secret, redirect_uris }],
//     "accounts": [{ id, email, email_verified, name }] }
// and each time builds the provider anew, with these clients and accounts
// and a new signing key (so a second line is a key rotation on the same
// issuer), and prints {"issuer": "http://127.0.0.1:PORT"}. It exits when
// stdin closes, so it never outlives the test that started it.
// The login name on its built-in login page is the account id; any password
// is accepted (the provider's dev interactions).
import http from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createInterface } from 'node:readline';
import Provider from 'oidc-provider';

/** A new signing key: without one the provider signs with a publicly known
 * development key. */
function signingKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: `test-${randomUUID()}` };
}

// The first key is made before the port is announced: a start-up that
// stalls is then one the test can end and launch again.
let unusedKey = signingKey();

/** A provider for one configuration, with a key of its own. */
function build(issuer, config) {
  const accounts = new Map(config.accounts.map((account) => [account.id, account]));
  const jwk = unusedKey ?? signingKey();
  unusedKey = undefined;
  const provider = new Provider(issuer, {
    clients: config.clients.map((client) => ({
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      ...client,
    })),
    jwks: { keys: [jwk] },
    async findAccount(ctx, id) {
      const account = accounts.get(id);
      if (!account) return undefined;
      return {
        accountId: id,
        async claims() {
          return {
            sub: id,
            email: account.email,
            email_verified: account.email_verified,
            name: account.name,
          };
        },
      };
    },
    scopes: ['openid', 'email', 'profile'],
    claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'] },
    // Put the requested claims into the ID token, as Google does.
    conformIdTokenClaims: false,
    // PKCE for every client, confidential ones too.
    pkce: { required: () => true },
    features: { devInteractions: { enabled: true } },
  });
  provider.on('server_error', (ctx, error) => console.error('server_error', error));
  return provider.callback();
}

let handle = (request, response) => {
  response.statusCode = 503;
  response.end('not configured yet\n');
};
const server = http.createServer((request, response) => handle(request, response));
server.on('error', (error) => {
  console.error(error.code || error);
  process.exit(1);
});
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  console.log(JSON.stringify({ port }));
  const lines = createInterface({ input: process.stdin });
  lines.on('line', (line) => {
    handle = build(issuer, JSON.parse(line));
    console.log(JSON.stringify({ issuer }));
  });
  lines.on('close', () => process.exit(0));
});

// server.close() would wait for keep-alive connections.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
