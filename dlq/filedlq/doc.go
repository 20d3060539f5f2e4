// Package filedlq is a dead-letter queue in local files: JSON Lines segments in one directory,
// each entry appended with a single write, fsynced before Put returns (by default), checksummed
// so that a torn or damaged line is never taken for an entry.
//
//	q, err := filedlq.Open("/var/lib/fanbridge/dlq") // SyncAlways
//	...
//	err = q.Put(ctx, entry) // nil: the entry is on disk and survives a power cut
//
// A Queue implements dlq.Queue for the dispatcher and dlq.Reader for inspection and dlq.Redrive.
//
// # Directory and segments
//
// The directory holds segment files named dlq-<sequence>.jsonl, with a 20-digit decimal sequence
// number starting at 1 (dlq-00000000000000000001.jsonl), and a LOCK file. Entries are appended to
// the segment with the highest number, the active one. When an entry would take the active segment
// past the maximum segment size (WithMaxSegmentSize, 64 MiB by default) a new segment with the
// next number is started; a segment therefore holds at least one entry, however large. Numbers
// only grow, so reading every segment in number order, and each from start to end, reads the
// entries oldest first. With WithRetention(n) starting a segment deletes the oldest segments
// beyond n, with their entries; by default nothing is ever deleted that way. HoldsQueue tells a
// directory that holds a queue by these files, for tools that must not take another directory
// for an empty queue.
//
// # File format, version 1
//
// A segment is a sequence of lines, each ending with "\n" (0x0A), each holding one entry:
//
//	{"crc32c":"<8 lowercase hex digits>","entry":<entry JSON>}
//
// where <entry JSON> is the entry in the single-line JSON shape of package dlq (version 1; see
// its documentation: Raw and Data are kept byte for byte) and the checksum is the CRC-32C
// (Castagnoli) of exactly the bytes of <entry JSON>. Every line is itself a JSON object, so jq
// and friends read a segment as it is (jq '.entry'). A reader accepts a line when the frame is
// exactly as above, the checksum matches and the entry decodes. AppendLine and ParseLine implement
// the format for tools.
//
// A line that fails the check is searched for frames, since damage can merge lines (a corrupt
// newline, a write cut short and followed by the next) or put garbage before one. Every
// occurrence of {"crc32c":"<8 lowercase hex digits>","entry":{ starts a candidate; the reader
// follows the brackets and strings of the entry JSON from there to the brace that closes it, and
// takes the candidate for an entry when the frame's closing brace comes next, the checksum
// matches, and the frame is followed by the line's newline or by any byte but ",", "]" and "}".
// That last rule keeps a frame quoted inside another entry's event JSON (an event that carries a
// dead-letter line) from being taken for an entry: in intact JSON a quoted frame is always
// followed by one of those three. Bytes outside the entries found are damage: skipped, never
// returned as an entry, and reported (see Damage). Bytes after the last newline are a torn write
// (ErrTorn), apart from the entries found among them; a frame that ends the segment without a
// following byte is a torn write too. The search reads each byte once, in time linear in the
// damaged bytes, and holds a bounded amount in memory however long the damage (a few times the
// longest line a reader accepts: twice WithMaxEntrySize, at least 16 MiB); lines without damage
// never pay for it.
//
// # Crashes and torn writes
//
// Each entry is appended with one write call on a file opened with O_APPEND, so that lines never
// interleave; a crash during the write can only leave a prefix of the line at the end of the
// segment. Open (for writing) looks at the end of every segment and, when it does not end with a
// newline, truncates the torn bytes away and fsyncs the segment before anything else is written,
// so the next entry starts on a line of its own. Torn bytes were never acknowledged (Put had not
// returned), so nothing acknowledged is lost. When the bytes after the last newline hold entries
// (the newline of the last line was damaged), Open keeps them, cuts the segment after the last
// one and writes the newline back. Each repair is reported to the WithOnDamage hook, logged as a
// warning, and returned by Recovered. Damage elsewhere (a disk error, a hand edit) is skipped and
// reported on every read, and kept as it is.
//
// # Deleting entries
//
// Delete rewrites each segment holding an entry to delete: everything else is copied, byte for
// byte, to dlq-<sequence>.jsonl.tmp, which is fsynced and renamed over the segment, and the
// directory is fsynced; a crash leaves either the old or the new segment, and Open removes a
// leftover .tmp file. A deleted entry goes with its newline, unless it shared its line with
// damage, which then keeps the newline; the damaged bytes and the entries found among them are
// copied as they are. A segment left empty is removed, unless it is the active one. The copy of
// the active segment holds the lines of Puts still waiting for their fsync; those Puts are
// acknowledged once the directory fsync has made the new segment the durable one, and if that
// fsync fails the queue refuses further entries (ErrBroken), as after a failed fsync of a segment.
//
// # Errors
//
// Open returns ErrInvalidOption for bad options and ErrLocked when another queue has the directory
// open for writing (one writer per directory, enforced with flock; readers opened WithReadOnly
// take no lock). Put returns errors wrapping dlq.ErrInvalidEntry or ErrTooLarge for entries it
// refuses (marked permanent with retry.Permanent), dlq.ErrClosed after Close, ErrBroken after a
// failed fsync (of a segment, or of the directory after a Delete rewrote the active segment) or an
// unrepairable failed write (the queue refuses entries until it is reopened),
// the context's error, or the storage error. A read-only queue returns dlq.ErrUnsupported from Put
// and Delete. Get returns dlq.ErrNotFound. Damaged bytes are not errors of List: they are reported
// with Damage values wrapping ErrTorn, ErrBadLine, ErrChecksum, ErrLineTooLong or a decoding error
// of package dlq.
//
// # Concurrency
//
// A Queue is safe for concurrent use. Puts are serialised for their single write and then, under
// SyncAlways, wait together: one fsync acknowledges every Put that wrote before it started (group
// commit), so many concurrent Puts cost about one fsync per round instead of one each. The first
// Put that waits starts the round on a goroutine of its own, so that every waiting Put, that one
// included, can still give up when its context ends. List, Get and Delete run beside Puts; List
// reads what was written when it started (and, when a Delete rewrote the active segment
// meanwhile, perhaps some entries written since), and fn may call Delete. Delete blocks Puts
// while it rewrites the active segment, and a Put that must start a new segment waits for a
// rewrite of an older one to finish. Close waits for a rewrite in progress before it releases the
// directory. Within one process and across processes, only one Queue may write a directory.
//
// # Delivery semantics
//
// What a nil error from Put promises depends on the sync policy (WithSync):
//
//   - SyncAlways (the default): the entry was written and fsynced (and the directory entry of its
//     segment too). It survives a crash of the process and of the machine (power loss, kernel
//     panic), as far as the disk honours fsync. This is what the intake's promise needs: an event
//     is acknowledged only when its dead letter is on stable storage.
//   - SyncInterval(d): the entry was written to the file, that is to the kernel's page cache. It
//     survives a crash or kill of the process; a machine crash loses the entries written in the
//     last d or so before it. A rotation and Close fsync all that was written.
//   - SyncNever: as SyncInterval, but the kernel alone decides when to write back (typically
//     within 30 s on Linux), so a machine crash may lose more; Close does not fsync either.
//
// An error from Put does not prove the entry absent: a Put whose context ended while it waited
// for the fsync has written its entry, which the next fsync makes durable, and one whose context
// ended while it waited for its turn to write (behind another Put's rotation or a Delete's rewrite
// of the active segment, which hold the queue for an fsync) hands its entry over: the queue
// writes it as soon as it is free, or at Close, up to 16 MiB of such entries, fsynced as any
// other under the sync policy. A caller that gives up on a dead-letter write may have no one to
// retry it (an Async dispatch already acknowledged its event); the entry is kept all the same,
// first in line and tried again after a write that fails (a full disk), unless the queue breaks
// before it is written (ErrBroken: then it is logged as lost, and the Put's error said it might
// be). The sender retries on such an error, so the queue
// may hold the same event twice; it never holds none. An fsync that
// fails makes the queue refuse further entries (ErrBroken), because the kernel may have discarded
// the data it could not write and a later successful fsync would prove nothing. So does an fsync
// that finds the active segment no longer at its name (removed or replaced under the running
// queue, by hand or by a cleanup job): the lines written to it since went with it, and no Put
// waiting for that fsync reports its entry stored. Under SyncNever nothing looks.
//
// Damage to a segment on disk (a flipped bit, a garbled or misdirected write, a zeroed block, a
// hand edit) costs the entries whose bytes it touched and no other:
//
//   - Every entry whose line, newline included, is intact is listed, fetched, redriven and
//     deleted as before, wherever the damage lies and however long it is: in the same line,
//     merged into it by a lost newline, or just before it.
//   - An entry whose bytes are intact but whose newline is damaged survives too, unless its
//     newline became ",", "]" or "}" (the rule that protects quoted frames) or the entry ends the
//     segment with no byte after it (a torn write, which Open truncates).
//   - An entry with a damaged byte of its own fails its checksum and is lost; so is one cut short.
//     The damaged bytes are reported on every read and kept by Delete, never dropped unseen.
//   - No entry is returned that does not match its checksum, so random damage cannot make one up
//     (a forged frame would have to match a CRC-32C). A frame quoted verbatim inside another
//     entry's event is only taken for an entry when the damage falls on the byte right after it.
package filedlq
