/**
 * @heed/attention/testing: the float64 reference and the conformance harness every attention operator is held to.
 */
export { referenceAttention, type HostTensor, type ReferenceOptions } from './reference.js'
