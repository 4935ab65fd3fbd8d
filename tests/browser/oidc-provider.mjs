// A real OpenID provider for the tests (npm oidc-provider, OpenID Certified),
// on a free loopback port. tests/it/support/oidc.rs starts it.
//
// Usage: node oidc-provider.mjs CONFIG.json
// CONFIG: { "port": PORT (0 picks one),
//           "clients": [{ client_id, client_secret, redirect_uris }],
//           "accounts": [{ id, email, email_verified, name }] }
// Prints one JSON line {"issuer": "http://127.0.0.1:PORT"} once it listens.
// The login name on its built-in login page is the account id; any password
// is accepted (the provider's dev interactions).
import http from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import Provider from 'oidc-provider';

const config = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const accounts = new Map(config.accounts.map((account) => [account.id, account]));

// A key made for this run: without one the provider signs with a publicly
// known development key.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), use: 'sig', alg: 'RS256', kid: `test-${Date.now()}` };

const server = http.createServer();
server.on('error', (error) => {
  console.error(error.code || error);
  process.exit(error.code === 'EADDRINUSE' ? 3 : 1);
});
server.listen(config.port || 0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
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
  server.on('request', provider.callback());
  console.log(JSON.stringify({ issuer }));
});

// server.close() would wait for keep-alive connections.
process.on('SIGTERM', () => process.exit(0));
process.on('SIGINT', () => process.exit(0));
