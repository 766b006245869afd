"""The sync protocol: how a node's log and the hub's log reach each other.

The log-position rule (no cursor gaps)
    A site's log positions are 1, 2, 3, ... with no hole, and **a position becomes
    visible only after every smaller one is**. Positions are assigned inside the
    writing transaction as one more than the largest committed position, and
    writers take turns: one writer thread per process, and on a PostgreSQL store
    shared by several hub processes (replicas) an advisory lock that every write
    takes before it begins and lets go only after it has committed
    (`sync.store.replicas.WriteLock`). So when a pull has read up to position n,
    nothing can later appear at or below n, and a cursor never skips an entry for
    good. Were the lock ever lost, two writers would read the same largest
    position and the second insert of it would fail on the log's primary key (a
    refused write that the sender retries), never a gap. Held by
    `tests/test_store_replicas.py` (two stores writing at once while a reader
    follows by cursor: positions 1..n, each seen once; it fails without the lock)
    and `tests/test_replicas.py` (pushes through two replica processes while nodes
    pull, one replica SIGKILLed mid-push: every version delivered once).

Both halves live here, side by side: the node's (`node_side.SyncClient`, one
round at a time), the hub's (`hub_side.HubSide`, which the hub's SyncService
hands each authenticated call), and the step both run on what they receive
(`receive.receive`). The wire messages are `techbridge.v1.sync`.

Topology
    Nodes dial the hub; the hub never dials a node (centres sit behind
    firewalls). Nodes learn of each other's records through the hub, which
    holds everything; each node receives what its audience allows (records
    for the whole network, those addressed to it, its own).

A round (`SyncClient.run_round`; rounds at one node never overlap)
    0. **A key rotation cut short** is settled first: a pending key the local
       registry does not name yet is put to the hub, which either shows it in
       its root-signed registry or answers KEY_NOT_REGISTERED (then the
       pending key is dropped).
    1. **Registry.** Ask the hub for a registry newer than the one held;
       verify it against the root key learned at enrolment; refuse a rollback.
    2. **Push.** Send the versions written here (or relayed here) that the
       hub has not acknowledged, oldest first, in batches of at most
       `push_batch` entries, up to PUSH_WINDOW (2) in flight over a
       bidirectional stream: the hub checks the next batch while it stores
       one, and the node reads and encodes the one after. The hub answers
       each batch in order; after one it cut (a version stamped ahead) it
       takes nothing more from the stream, so a batch sent behind it is sent
       again in a later round. Each batch carries a transaction id ("<site>:<first>-<through>:
       <digest of its version ids>") so a batch retried after a lost
       acknowledgement is a no-op at the hub, and one at the same positions
       with other content (a restored node that wrote anew) is not. The hub
       runs the receive step and answers with the position it now holds; the
       node records it as `push_acked`.
    3. **Pull.** Ask for the hub's log after `pull_cursor`. The hub streams
       bounded batches (at most BATCH_MAX entries) up to its head as it stood
       when the pull began; the node reads and checks up to PULL_PREFETCH
       batches ahead while it stores one, and runs the receive step on each.

The receive step (`receive.receive`), the same at both ends
    Check every envelope against the registry (refusals are stored with
    their reason and never block the entries behind them; an unknown key
    sends a pulling node for a newer registry, then the batch is checked
    again), stop before the first entry stamped ahead of this site's clock
    (the cursor stops just before it; the next round takes it again), store
    the batch *with* the sender's cursor in one transaction, then quarantine
    what a revocation reached meanwhile. A crash at any instant leaves a
    cursor that matches what is held, so the next round resumes exactly
    there; versions already held are skipped by hash, so nothing is doubled.

Cursors
    A cursor is a position in the other side's log, never a time: the hub
    keeps `pull_cursor` (how far it holds each node's log) and `push_acked`
    (how far each node holds the hub's, as its last Pull said); the node
    keeps the same two for the hub. The hub skips, but still covers, entries
    a node must not receive or sent itself.

Checkpoints and restore
    Each pull batch names the version at its last position; the node keeps
    it beside its cursor and sends it with the next Pull, and each push batch
    says where the hub last acknowledged it. The hub answers
    CHECKPOINT_MISMATCH (a reason code in the status details) when a push
    starts past what it holds of the node's log, a pull's cursor is past its
    head, or the version at the cursor is not the one the node names: the
    hub's store was restored. The node then reconciles by what each side
    holds: both cursors back to 0 under a `reconciling` mark that survives a
    crash, a push of every version held here (not only its own), a pull of
    the hub's whole log; hashes make every duplicate a no-op. A node restored
    from a backup is recognised by the hub (a push that starts before what
    the hub holds under an id it never applied, or a pull whose `own_head` is
    behind what the hub received): the hub sends the node's own entries back
    in every pull until the node has pulled past the head of the first such
    pull.

Errors, timing and the watch
    Every call has a deadline. A round that fails records the error against
    the peer (shown by `sync status`) and leaves every cursor where the last
    committed batch put it; failures in a row set an exponential backoff with
    jitter (`sync.backoff`) kept in the store, which the node's schedule
    (`node.schedule`) respects. The hub's Watch stream answers at once with
    the head of its log as the node may see it, then on every commit and at
    least every WATCH_HEARTBEAT_S; a node holds at most WATCHES_PER_NODE.
    The node's watcher (`node.live`) kicks a round when the head passes its
    cursor and clears the backoff the moment the hub answers; every local
    write kicks a round too.

Hub replicas
    Several `hub serve` processes on one PostgreSQL database are one hub: the
    same keys (`hub replica` copies the data folder), one log (the rule above),
    any replica takes pushes and serves pulls and watches. A commit through one
    replica wakes the watch streams held by the others through PostgreSQL
    `NOTIFY` (`sync.store.replicas.Listener`), and a new registry stored by one
    is adopted by the others the same way; scheduled jobs run in one replica at
    a time (`sync.jobs`). A node given several hub addresses (`node init --hub
    A,B`) sends its rounds and its watch stream to the one that answered last,
    and turns to the next when a call finds it UNAVAILABLE, within the same
    round; batches acknowledged by the dead replica are in the database, and one
    cut short is retried under its transaction id.
"""
