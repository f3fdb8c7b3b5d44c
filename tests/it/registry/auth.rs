//! Authentication against a registry with htpasswd Basic auth and with
//! token auth, credentials as Docker keeps them.
