// Package store is the disk of an ore box: a badger v4 block store that
// implements boxo's blockstore.Blockstore, with a storage quota and a set of
// pinned roots.
//
// It is its own package because the block store is shared: the node writes
// fetched content into it, bitswap serves from it, and heat-based eviction
// will later delete from it. It belongs to none of node, dht, bitswap, pod or
// ledger, and none of them should own the others' disk.
//
// # Usage
//
//	s, err := store.Open(dir, store.WithQuota(200<<30), store.WithLogger(log))
//	if err != nil {
//		return err // errors.Is(err, store.ErrLocked): another ore runs on dir
//	}
//	defer s.Close()
//	if err := s.Put(ctx, blk); errors.Is(err, store.ErrQuotaExceeded) {
//		// evict something, or refuse the content
//	}
//	b, err := s.Get(ctx, blk.Cid()) // format.IsNotFound(err) if missing
//	_ = s.Pin(ctx, root)            // durable when it returns
//
// # Layout
//
// Keys (all in one badger DB):
//
//	b/<multihash>  block bytes; 1 KiB and larger go to the value log, so
//	               LSM compaction never rewrites block data
//	s/<multihash>  uvarint block size, inline in the LSM tree
//	p/<CID bytes>  pin (empty value)
//	m/version      key layout version
//
// # Invariants
//
//   - Blocks are keyed by multihash: a CIDv0 and a CIDv1 of the same bytes
//     are one block. Get returns a block whose CID is the one asked for; it
//     does not re-hash. Put trusts the block's CID and does not re-hash
//     either: callers must only pass verified blocks (bitswap verifies).
//   - b/ and s/ of a block are written and deleted in one transaction, so a
//     block exists exactly when its size record exists. Has, GetSize and
//     AllKeysChan read only size records and never touch block data.
//   - Used is the sum of the sizes of the stored blocks. It is not stored:
//     Open recomputes it from the size records (which are inline in the LSM
//     tree, so no block data is read). Badger's Item.ValueSize is only an
//     estimate for value-log entries (it is off by one byte for a 256 KiB
//     block), which is why sizes have their own records.
//   - Used never exceeds a non-zero quota. Writes to one multihash are
//     serialised by striped locks and quota is reserved with a CAS before the
//     write, so concurrent Puts can neither overshoot the quota nor count a
//     block twice. A Put or PutMany refused for quota writes nothing.
//   - A Put that returned survives the process being killed (SIGKILL): the
//     write is in badger's memory-mapped WAL and value log, i.e. in the page
//     cache. Surviving a power loss needs WithSyncWrites or Sync. Pin syncs.
//   - Deleting lowers Used at once; the value-log space comes back only when
//     CollectGarbage rewrites the log.
//   - Badger memory-maps its log files as sparse files. Keep the quota well
//     below the free space on the device: a write into a mapping on a full
//     disk is fatal to the process, before badger can return an error. Disk
//     errors badger does return wrap ErrDiskFull.
//   - One process per directory: Open fails with ErrLocked otherwise.
//   - Pins are a set of roots keyed by full CID bytes; recursion, and keeping
//     pinned blocks from being deleted, is the caller's business.
package store
