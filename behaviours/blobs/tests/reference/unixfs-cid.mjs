// Prints what the js IPFS importer (ipfs-unixfs-importer) builds for a file, with the options
// of `ipfs add --cid-version=1 --raw-leaves --chunker=size-1048576`, as lines:
//   root <cid> <file size>
//   block <cid> <hex of the block, for dag-pb blocks | - for raw leaves>
// Usage: node unixfs-cid.mjs <file>
// Used by ../unixfs_reference.rs to check mcc-blobs' CIDs against an independent implementation.
import { createReadStream } from 'node:fs'
import { MemoryBlockstore } from 'blockstore-core/memory'
import { importer } from 'ipfs-unixfs-importer'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

const DAG_PB = 0x70

const path = process.argv[2]
if (path == null) {
  console.error('usage: node unixfs-cid.mjs <file>')
  process.exit(2)
}

// The memory blockstore keys blocks by multihash and forgets the codec: note each CID as it is
// put. dag-pb nodes are small, worth comparing byte for byte; raw leaves by CID only.
const blockstore = new MemoryBlockstore()
const blocks = new Map()
const put = blockstore.put.bind(blockstore)
blockstore.put = async (cid, block, opts) => {
  blocks.set(cid.toString(), cid.code === DAG_PB ? Buffer.from(block).toString('hex') : '-')
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
const lines = [`root ${root.cid.toString()} ${size}`]
for (const [cid, hex] of blocks) {
  lines.push(`block ${cid} ${hex}`)
}
process.stdout.write(lines.join('\n') + '\n')
