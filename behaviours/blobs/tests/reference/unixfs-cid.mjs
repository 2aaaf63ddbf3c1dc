// Prints, as one JSON line, what the js IPFS importer builds for a file:
// {"root": "<cid>", "size": <bytes>, "blocks": {"<cid>": "<hex of block, dag-pb only>" | null}}
// with the options of `ipfs add --cid-version=1 --raw-leaves --chunker=size-1048576`.
// Usage: node unixfs-cid.mjs <file>
import { createReadStream } from 'node:fs'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const path = process.argv[2]
if (path == null) {
  console.error('usage: node unixfs-cid.mjs <file>')
  process.exit(2)
}

// The memory blockstore keys blocks by multihash and forgets the codec: note each CID as it is put.
const blockstore = new MemoryBlockstore()
const blocks = {}
const put = blockstore.put.bind(blockstore)
blockstore.put = async (cid, block, opts) => {
  // 0x70 = dag-pb: small nodes, worth comparing byte for byte; raw leaves by CID only.
  blocks[cid.toString()] = cid.code === 0x70 ? Buffer.from(block).toString('hex') : null
  return put(cid, block, opts)
}
const options = {
  cidVersion: 1,
  rawLeaves: true,
  reduceSingleLeafToSelf: true,
  chunker: fixedSize({ chunkSize: 1048576 }),
  layout: balanced({ maxChildrenPerNode: 174 })
}

let root = null
for await (const entry of importer([{ content: createReadStream(path) }], blockstore, options)) {
  root = entry
}
if (root == null) {
  console.error('the importer returned no entry')
  process.exit(1)
}

const size = root.unixfs != null ? root.unixfs.fileSize() : root.size
console.log(JSON.stringify({ root: root.cid.toString(), size: Number(size), blocks }))
