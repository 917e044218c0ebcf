/**
 * The one place impp loads @peculiar/x509: it needs the Reflect metadata API (its dependency
 * injection uses tsyringe) and a WebCrypto implementation for signature checks (Node's).
 *
 * @peculiar/x509 is used to READ certificates and CRLs and to check a CRL's signature against a
 * configured CA key. It is never the chain validator: its chain builder matches names and
 * signatures only (a rogue CA with the same name would pass it). Node's TLS layer validates chains.
 */
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

export { x509 };
