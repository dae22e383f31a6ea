"""Identity for the shared care register: keys, tokens, client assertions, scopes, principals.

This package knows who is asking and what their token allows. It never touches the database or
HTTP routing; the service (``register/``) wires it to settings, storage and routes.

Module map:

- ``auth.jws``: the only module importing python-jose (sign, verify one signature).
- ``auth.keys``: the embedded issuer's signing keys on disk, rotation, the public JWK set.
- ``auth.jwks``: where verification keys come from (a static set, a remote JWKS URL).
- ``auth.tokens``: issue and verify access tokens.
- ``auth.client_assertion``: SMART Backend Services ``private_key_jwt`` client authentication.
- ``auth.scopes``: SMART v1/v2 scope parsing, checks, query constraints, narrowing.
- ``auth.principal``: who is asking (``Principal``, ``Role``, ``OPERATOR``).
- ``auth.token_cache``: verified tokens remembered until they expire.
- ``auth.policy``: the policy decision point (may the request start, what may be seen, may this
  write happen, break-glass), pure functions over plain data.
"""
