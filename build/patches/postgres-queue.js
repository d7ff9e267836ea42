// AtlasHub's replacement for postgres.js' src/queue.js, installed by build/patch-postgres.mjs.
// The original's shift() leaves a hole at the front and its remove() searches from index 0, and
// the pool shifts a busy connection out and pushes it back for every pipelined query: under steady
// load the busy queue's array grows by one slot per query and every remove scans all of it. Here
// removed slots are skipped by the search and dropped once they are half the array.
export default Queue

function Queue(initial = []) {
  let xs = initial.slice()
  let head = 0 // xs[0 .. head) were shifted out

  function dropShifted() {
    if (head === xs.length) {
      xs = []
      head = 0
    } else if (head > 32 && head * 2 > xs.length) {
      xs = xs.slice(head)
      head = 0
    }
  }

  return {
    get length() {
      return xs.length - head
    },
    remove: (x) => {
      const at = xs.indexOf(x, head)
      if (at === -1) return null
      xs.splice(at, 1)
      dropShifted()
      return x
    },
    push: (x) => (xs.push(x), x),
    shift: () => {
      if (head === xs.length) return undefined
      const out = xs[head]
      xs[head++] = undefined
      dropShifted()
      return out
    }
  }
}
