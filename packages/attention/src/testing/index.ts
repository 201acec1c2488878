/**
 * @heed/attention/testing: the float64 reference and the conformance harness every attention operator is held to.
 */
export { referenceAttention, type HostTensor, type ReferenceOptions } from './reference.js'
export { referenceProbs } from './probs.js'
export { conformance, CONTRACTS, type ConformanceOperator, type ConformanceRun, type ConformanceRunOptions, type ConformanceTest, type ConformanceReport, type Contract, type Pattern, type Tolerance, type HostArray } from './conformance.js'
