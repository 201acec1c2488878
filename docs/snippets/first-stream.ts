// #region recipe
import { from, lastValueFrom, map, toArray } from 'rxjs'
import { chunkTokens, disposeChunk } from '@heed/tensor/stream'

// Ten token ids arrive one by one and are re-cut into chunks of 4 rows that know their absolute positions.
const chunks = await lastValueFrom(
  from([5, 3, 8, 1, 9, 2, 7, 4, 6, 0]).pipe(
    chunkTokens({ size: 4 }),
    map(chunk => {
      const row = { start: chunk.positions, ids: Array.from(chunk.tokens.dataSync()) }
      // This chunk reached no operator, only our map: it is ours to free (an operator would only have borrowed it).
      disposeChunk(chunk)
      return row
    }),
    toArray(),
  ),
)
console.log(chunks) // => [{"start":0,"ids":[5,3,8,1]},{"start":4,"ids":[9,2,7,4]},{"start":8,"ids":[6,0]}]
// #endregion recipe
