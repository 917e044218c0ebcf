/**
 * impp/seal/payload: the payload formats that sealed objects carry. Pure codecs, no keys:
 * Message/CPIM (RFC 3862) for messages, PIDF (RFC 3863) for presence, and XML-DSIG interop
 * signatures on PIDF. The hardened XML parser (`xml.ts`) and the text helpers stay internal.
 *
 * @example
 * ```ts
 * import { decodeCpim, parsePidf } from 'impp/seal/payload';
 * const msg = decodeCpim(openedBytes);
 * ```
 */
export {
  CPIM_HEADERS_NAMESPACE,
  DEFAULT_CPIM_LIMITS,
  cpimText,
  cpimTextMessage,
  decodeCpim,
  encodeCpim,
  type CpimContent,
  type CpimHeader,
  type CpimLimits,
  type CpimMessage,
  type CpimMimeHeader,
  type CpimNamespace,
  type CpimParam,
  type CpimParty,
  type CpimSubject,
  type CpimTextMessageInit,
} from './cpim.js';
export {
  DEFAULT_PIDF_LIMITS,
  PIDF_NAMESPACE,
  buildPidf,
  parsePidf,
  type PidfContact,
  type PidfDocument,
  type PidfLimits,
  type PidfNote,
  type PidfParseOptions,
  type PidfStatus,
  type PidfTuple,
} from './pidf.js';
export {
  DSIG_NAMESPACE,
  EcdsaSha256,
  XMLDSIG_PROFILE,
  XMLDSIG_SIGNATURE_ALGORITHMS,
  signPidf,
  verifySignedPidf,
  type VerifiedPidf,
  type XmlDsigAlgorithm,
  type XmlDsigSigner,
  type XmlDsigSignerName,
  type XmlDsigVerifyOptions,
} from './xmldsig.js';
