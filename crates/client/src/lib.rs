//! The client side of the protocol: key generation, request encryption from raw rows (vocabulary
//! and digit mapping on the client) and response decryption. It must never hold server-only state
//! or send a secret key.
