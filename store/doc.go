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
//	b/<multihash>  a block under 1 KiB itself; a larger one is a pointer
//	               (UserMeta metaPacked) to a record in a pack file
//	s/<multihash>  uvarint block size, inline in the LSM tree
//	p/<CID bytes>  pin (empty value)
//	m/version      key layout version (2; a version-1 store, with every
//	               block in badger, is read and upgraded in place)
//
// Block bytes of 1 KiB and more live in append-only pack files under
// packs/ (256 MiB each, 64 MiB with the small profile), written with
// pwrite and read with pread, each record checked by CRC-32C and key as
// the integrity rule below says. They are never memory-mapped: the resident memory of a box
// serving or fetching gigabytes stays that of its heap. Each Open starts a
// new pack; CollectGarbage removes packs with no live block and compacts
// those less than half live.
//
// # Integrity
//
// The one rule for block bytes read from pack files, and its reason:
//
//   - Get, View (and so bitswap and every reader of blocks) check a
//     record's key and CRC-32C on every read.
//   - Section, which hands out where a block's bytes lie so that a caller
//     can send them file to socket with sendfile (the gateway's local fast
//     path), checks a record the first time it locates it in a process and
//     remembers the block's place (up to 64 Ki blocks, forgetting them all
//     when full, so forgetting costs a read, never a check; deleting or
//     moving a block forgets it); a damaged record fails it with
//     ErrCorrupt. Bytes sendfile copies never reach user space, so they
//     cannot be checked on their way; a record never changes once written
//     (packs are append-only, compaction writes a new record elsewhere), so
//     one check covers what was written. What it cannot see is the disk
//     decaying under a running process after the check: such a record is
//     served as it lies until the process restarts (or the set is
//     forgotten), where Get would fail. The page cache holds most such
//     records as they were checked, a disk's own error correction turns
//     most decay into a read error rather than other bytes, and a client
//     that must not trust the gateway asks for the trustless formats
//     (blocks and CARs), which go through Get.
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
//     pack record and badger's WAL are in the page cache. A pack record is
//     written before its pointer is committed, so a pointer never names
//     unwritten bytes. Surviving a power loss needs WithSyncWrites or Sync;
//     Pin syncs the packs, then badger; packs are also fsynced every second.
//     A record damaged on disk reads as an error wrapping ErrCorrupt.
//   - Deleting lowers Used at once; the disk space comes back only when
//     CollectGarbage compacts the packs and rewrites the value log.
//   - Badger memory-maps its log files as sparse files. Keep the quota well
//     below the free space on the device: a write into a mapping on a full
//     disk is fatal to the process, before badger can return an error. Disk
//     errors badger does return wrap ErrDiskFull.
//   - One process per directory: Open fails with ErrLocked otherwise.
//   - Pins are a set of roots keyed by full CID bytes; recursion, and keeping
//     pinned blocks from being deleted, is the caller's business.
package store
