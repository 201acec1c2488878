// #region recipe
import { rng } from '@heed/tensor'
import { TensorBrain, type Triple } from '@heed/memory'

const entities = ['dog', 'cat', 'mammal', 'tail', 'pack']
const predicates = ['hypernym', 'part_of', 'member_of']
const id = (e: string) => entities.indexOf(e)
const fact = (s: string, p: string, o: string): Triple => ({ subject: id(s), predicate: predicates.indexOf(p), object: id(o) })
const facts = [fact('dog', 'hypernym', 'mammal'), fact('cat', 'hypernym', 'mammal'), fact('tail', 'part_of', 'dog'), fact('dog', 'member_of', 'pack')]
const text = ({ subject, predicate, object }: Triple) => `${entities[subject]} ${predicates[predicate]} ${entities[object]}`

const brain = new TensorBrain({ entities, predicates, dim: 128, seed: 1 })

// Perception: noisy scenes are decoded role by role, each decoded concept explained away before the next.
const scenes = brain.scene(facts, { noise: 0.5, rng: rng(7) })
const seen = await brain.perceive(scenes)
scenes.dispose()
console.log(seen.triples.map(text)) // => ["dog hypernym mammal","cat hypernym mammal","tail part_of dog","dog member_of pack"]

// Episodic memory: each triple is imprinted once under a new time index and recalled from that index alone.
const times = brain.storeEpisodes(facts)
console.log((await brain.recall(times)).map(text)) // => ["dog hypernym mammal","cat hypernym mammal","tail part_of dog","dog member_of pack"]

// "When did I see the tail?": a partial cue goes back to the time index of the episode.
const { t } = await brain.recallByCue({ subject: id('tail') })
console.log(t) // => 2

// Semantic memory marginalises over the episodes: half of them were hypernym facts.
const { predicate } = await brain.semantic()
console.log(Array.from(predicate, p => Number(p.toFixed(2)))) // => [0.5, 0.25, 0.25]
brain.dispose()
// #endregion recipe
