// #region recipe
import { either as E } from 'fp-ts'
import { accuracy, demographicParityDifference, loadAdult, softDemographicParity, tabularData, trainDistraction, trainProtectedAttributeEncoder, type TabularData } from '@heed/fairness'

// The bundled UCI Adult copy, encoded (one-hot categoricals, standardised numerics); groups from `sex`.
const loaded = await loadAdult()
if (E.isLeft(loaded)) throw loaded.left
const { train, test } = loaded.right

/** The first n rows: a slice small enough for a recipe that runs in seconds. */
const head = (data: TabularData, n: number): TabularData =>
  tabularData({
    x: data.x.subarray(0, n * data.d), d: data.d, y: data.y.subarray(0, n), groups: data.groups.subarray(0, n),
    featureNames: data.featureNames, groupNames: data.groupNames, sensitiveColumns: data.sensitiveColumns,
  })
const trainSlice = head(train, 2000)
const testSlice = head(test, 1000)
console.log(trainSlice.d, trainSlice.groupNames) // => [103, ["Female", "Male"]]

// 1. A frozen encoder that predicts the group from the other features; its last hidden layer is the query.
const encoder = trainProtectedAttributeEncoder(trainSlice, { epochs: 3 })
// 2. The classifier, with the Distraction attention module between its body and its output layer: warm-up
// epochs of plain cross-entropy, then alternating steps (module on the η·DP penalty, classifier on cross-entropy
// plus that penalty, as the authors' code trains it: classifierPenalty).
const model = trainDistraction(trainSlice, { encoder, eta: 10, warmupEpochs: 3, epochs: 2, lrModule: 1e-3, lrClassifier: 1e-2, batchSize: 100 })
const probs = model.predictProba(testSlice)
const yPred = Array.from(probs, p => (p > 0.5 ? 1 : 0))
const acc = accuracy(testSlice.y, yPred)
const gap = demographicParityDifference(testSlice.y, yPred, { sensitiveFeatures: testSlice.groups })
const soft = softDemographicParity(probs, testSlice.groups)
console.log(`accuracy ${acc.toFixed(3)}, DP gap ${gap.toFixed(3)}, soft DP ${soft.toFixed(3)} on ${testSlice.n} test rows`)
console.log(acc > 0.78) // => true
model.dispose()
encoder.dispose()
// #endregion recipe
