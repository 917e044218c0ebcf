// cbor-x loads its native string extractor with require('cbor-extract') inside a try/catch and
// falls back to pure JavaScript when it fails. impp wants that fallback: no native code parses
// untrusted bytes, and the prebuilt binaries are not published on the registry CI installs from.
throw new Error('cbor-extract is disabled in impp');
