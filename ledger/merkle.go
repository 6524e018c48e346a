package ledger

import "crypto/sha256"

// The transaction Merkle tree follows RFC 6962 (Certificate Transparency):
// leaves and inner nodes are hashed with distinct prefixes, and a tree of n
// leaves splits at the largest power of two below n, so no two lists of
// leaves share a root (no duplicated-last-leaf ambiguity).
const (
	merkleLeaf  = 0x00
	merkleInner = 0x01
)

var emptyRoot = sha256.Sum256([]byte("ore/ledger/v1/empty-tx-tree"))

// MerkleRoot is the root over leaves (transaction IDs, in block order).
func MerkleRoot(leaves [][32]byte) [32]byte {
	if len(leaves) == 0 {
		return emptyRoot
	}
	level := make([][32]byte, len(leaves))
	var buf [65]byte
	for i, l := range leaves {
		buf[0] = merkleLeaf
		copy(buf[1:], l[:])
		level[i] = sha256.Sum256(buf[:33])
	}
	return merkleNodes(level)
}

// merkleNodes folds hashed leaves into a root, splitting as RFC 6962 does.
func merkleNodes(h [][32]byte) [32]byte {
	if len(h) == 1 {
		return h[0]
	}
	k := 1
	for k*2 < len(h) {
		k *= 2
	}
	l, r := merkleNodes(h[:k]), merkleNodes(h[k:])
	var buf [65]byte
	buf[0] = merkleInner
	copy(buf[1:], l[:])
	copy(buf[33:], r[:])
	return sha256.Sum256(buf[:])
}

// MerkleProof returns the audit path of leaf i (sibling hashes, bottom
// up), so a box can show that its receipt is in a block by the header alone.
func MerkleProof(leaves [][32]byte, i int) ([][32]byte, bool) {
	if i < 0 || i >= len(leaves) {
		return nil, false
	}
	h := make([][32]byte, len(leaves))
	var buf [33]byte
	for j, l := range leaves {
		buf[0] = merkleLeaf
		copy(buf[1:], l[:])
		h[j] = sha256.Sum256(buf[:])
	}
	var path [][32]byte
	for len(h) > 1 {
		k := 1
		for k*2 < len(h) {
			k *= 2
		}
		if i < k {
			path = append(path, merkleNodes(h[k:]))
			h = h[:k]
		} else {
			path = append(path, merkleNodes(h[:k]))
			h, i = h[k:], i-k
		}
	}
	// The path was collected top down; verification goes bottom up.
	for a, b := 0, len(path)-1; a < b; a, b = a+1, b-1 {
		path[a], path[b] = path[b], path[a]
	}
	return path, true
}

// VerifyMerkleProof checks that leaf is leaf i of n under root.
func VerifyMerkleProof(root, leaf [32]byte, i, n int, path [][32]byte) bool {
	if i < 0 || i >= n {
		return false
	}
	var buf [65]byte
	buf[0] = merkleLeaf
	copy(buf[1:], leaf[:])
	h := sha256.Sum256(buf[:33])
	// Recompute the splits top down to know, at each level, which side
	// the sibling is on; then fold bottom up.
	var left []bool
	for lo, hi := 0, n; hi-lo > 1; {
		k := 1
		for k*2 < hi-lo {
			k *= 2
		}
		if i < lo+k {
			left = append(left, false) // sibling on the right
			hi = lo + k
		} else {
			left = append(left, true)
			lo += k
		}
	}
	if len(left) != len(path) {
		return false
	}
	buf[0] = merkleInner
	for j := range path {
		sibLeft := left[len(left)-1-j]
		if sibLeft {
			copy(buf[1:], path[j][:])
			copy(buf[33:], h[:])
		} else {
			copy(buf[1:], h[:])
			copy(buf[33:], path[j][:])
		}
		h = sha256.Sum256(buf[:])
	}
	return h == root
}
