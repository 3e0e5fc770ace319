//! [`SimStorage`]: a deterministic simulated disk for crash and fault tests.
//!
//! # Model
//! Names and file contents are kept apart, as on a real filesystem, because they become
//! durable by different calls ([`StorageFile::sync`] versus [`Storage::sync_dir`]).
//!
//! - Every **inode** has `durable` bytes (what survives any crash), `current` bytes (what
//!   reads see) and the list of `pending` writes and `set_len`s since its last successful
//!   `sync`, in order; `current` is always `durable` with all of `pending` applied. A
//!   successful `sync` makes `durable = current`. A *failed* `sync` changes nothing: the
//!   pending operations stay pending and their fate at the next crash is unknown, which is
//!   why a caller must never retry a failed `sync` as if nothing had happened.
//! - The **namespace** (name to inode) likewise has a durable map, a current map and the
//!   pending `create_new`, `remove` and `rename` calls since the last `sync_dir`. A file
//!   whose creation was never made durable by `sync_dir` can vanish at a crash even if its
//!   contents were synced (POSIX allows this, and real filesystems do it).
//!
//! # Crash
//! [`SimStorage::crash`] is a power loss followed by a reboot. The namespace and every inode
//! independently keep a uniformly random prefix (possibly empty, possibly all) of their
//! pending operations on top of their durable state; the rest are lost. If the last kept
//! operation of an inode is a write, it is *torn* with probability 1/4 (only a prefix of the
//! 512-byte sectors it touches reaches the disk, sectors being aligned to absolute file
//! offsets) and *garbled* with probability 1/8 (its bytes are replaced by random garbage of
//! the same length). Afterwards `current = durable` everywhere, power cuts and pending faults
//! are cleared, and every handle opened before the crash is dead: all its calls fail with
//! `EIO`, so callers must reopen through the storage, as after a real reboot.
//!
//! # Faults
//! - [`SimStorage::power_cut_after`] lets a number of *mutating* calls (`write_at`, `sync`,
//!   `set_len`, `create_new`, `remove`, `rename`, `sync_dir`) through; the next one and every
//!   later call of any kind then fail with `EIO` and no effect until `crash`. A call counts
//!   towards the budget once it gets past the power and fault checks, even if it then fails
//!   for its own reasons (such as `NotFound`).
//! - [`SimStorage::inject`] fails one chosen call of one [`FaultOp`] with `EIO` or `ENOSPC`
//!   and no effect. Calls on dead handles and during a power cut still fail with `EIO`.
//!
//! Every random choice comes from one `fastrand::Rng` seeded by [`SimStorage::new`], and
//! all maps are ordered, so the same seed and the same calls give the same result.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    fmt, io, mem,
    sync::{Arc, Mutex, MutexGuard, PoisonError},
};

use super::{Storage, StorageFile};

/// The granularity at which a torn write persists: a disk writes whole sectors atomically.
const SECTOR: usize = 512;

/// A simulated disk for crash and fault-injection tests. Clones share the same disk.
///
/// It keeps each file's durable (synced) bytes apart from the bytes reads see, and the
/// durable namespace (as of the last `sync_dir`) apart from the current one. [`crash`]
/// keeps a random prefix of the unsynced operations of each file and of the namespace,
/// possibly tearing (at 512-byte sectors) or garbling the last kept write, and kills every
/// open handle. [`power_cut_after`] and [`inject`] make chosen calls fail with `EIO` or
/// `ENOSPC` and no effect. Everything random derives from the seed given to [`new`].
///
/// [`crash`]: Self::crash
/// [`power_cut_after`]: Self::power_cut_after
/// [`inject`]: Self::inject
/// [`new`]: Self::new
#[derive(Clone)]
pub struct SimStorage {
    state: Arc<Mutex<State>>,
}

/// A one-shot fault for [`SimStorage::inject`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fault {
    /// Which kind of call fails.
    pub op: FaultOp,
    /// Which call of that kind fails, 0-based, counted from the call to `inject`.
    pub nth: u64,
    /// The error it fails with.
    pub kind: FaultKind,
}

/// The calls that can be counted and made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultOp {
    /// [`StorageFile::read_at`].
    Read,
    /// [`StorageFile::write_at`].
    Write,
    /// [`StorageFile::sync`].
    Sync,
    /// [`StorageFile::set_len`].
    SetLen,
    /// [`StorageFile::len`].
    Len,
    /// [`Storage::open`].
    Open,
    /// [`Storage::create_new`].
    CreateNew,
    /// [`Storage::list`].
    List,
    /// [`Storage::remove`].
    Remove,
    /// [`Storage::rename`].
    Rename,
    /// [`Storage::sync_dir`].
    SyncDir,
}

impl FaultOp {
    /// The calls that change the disk: they count towards a power-cut budget, and a test
    /// that must prove nothing was written counts them.
    pub const MUTATING: [FaultOp; 7] = [
        Self::Write,
        Self::Sync,
        Self::SetLen,
        Self::CreateNew,
        Self::Remove,
        Self::Rename,
        Self::SyncDir,
    ];

    /// Whether the call changes the disk.
    fn is_mutating(self) -> bool {
        Self::MUTATING.contains(&self)
    }
}

/// The error an injected fault fails with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// An I/O error (`EIO`).
    Eio,
    /// No space left on the device (`ENOSPC`, [`io::ErrorKind::StorageFull`]).
    Enospc,
}

impl FaultKind {
    /// The error a real Linux system call would return, so callers see what they would see.
    #[cfg(target_os = "linux")]
    fn error(self) -> io::Error {
        match self {
            Self::Eio => io::Error::from_raw_os_error(5),
            Self::Enospc => io::Error::from_raw_os_error(28),
        }
    }

    /// Elsewhere error numbers differ, so only the kind is imitated.
    #[cfg(not(target_os = "linux"))]
    fn error(self) -> io::Error {
        match self {
            Self::Eio => io::Error::new(io::ErrorKind::Other, "simulated EIO"),
            Self::Enospc => io::Error::new(io::ErrorKind::StorageFull, "simulated ENOSPC"),
        }
    }
}

/// The error of a dead handle or of a powered-off disk.
fn eio() -> io::Error {
    FaultKind::Eio.error()
}

fn not_found(name: &str) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("no file {name:?}"))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what.to_owned())
}

type InodeId = u64;

/// A change to a file's contents not yet made durable by `sync`.
#[derive(Debug, Clone)]
enum PendingOp {
    /// `offset + data.len()` is known not to overflow, and `data` is never empty.
    Write {
        offset: usize,
        data: Vec<u8>,
    },
    SetLen(usize),
}

/// A change to the namespace not yet made durable by `sync_dir`.
#[derive(Debug, Clone)]
enum NameOp {
    Create { name: String, inode: InodeId },
    Remove { name: String },
    Rename { from: String, to: String },
}

impl NameOp {
    fn apply(&self, names: &mut BTreeMap<String, InodeId>) {
        match self {
            Self::Create { name, inode } => {
                names.insert(name.clone(), *inode);
            }
            Self::Remove { name } => {
                names.remove(name);
            }
            Self::Rename { from, to } => {
                if let Some(inode) = names.remove(from) {
                    names.insert(to.clone(), inode);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Inode {
    durable: Vec<u8>,
    current: Vec<u8>,
    pending: Vec<PendingOp>,
}

/// Writes `bytes` at `offset`, zero-filling any gap after the end of `data`.
fn write_into(data: &mut Vec<u8>, offset: usize, bytes: &[u8]) {
    if bytes.is_empty() {
        return;
    }
    let end = offset.saturating_add(bytes.len());
    if data.len() < end {
        data.resize(end, 0);
    }
    data[offset..end].copy_from_slice(bytes);
}

/// Everything about the disk, behind one lock: simple, and good enough for tests.
#[derive(Debug)]
struct State {
    rng: fastrand::Rng,
    /// Bumped by every crash; handles remember the boot they were opened in.
    boot: u64,
    next_inode: InodeId,
    /// Ordered maps so that crashes consume random numbers in a reproducible order.
    inodes: BTreeMap<InodeId, Inode>,
    durable_names: BTreeMap<String, InodeId>,
    current_names: BTreeMap<String, InodeId>,
    pending_names: Vec<NameOp>,
    /// Mutating calls still allowed before the power goes out; `None` if no cut is armed.
    power_budget: Option<u64>,
    powered_off: bool,
    calls: HashMap<FaultOp, u64>,
    /// Pending faults as (op, absolute call index, kind).
    faults: Vec<(FaultOp, u64, FaultKind)>,
}

impl State {
    /// Counts a call and decides whether it may go ahead: it fails on a dead handle (opened
    /// in an earlier `boot`), during a power cut, on an injected fault, or when it exhausts
    /// the power budget.
    fn begin(&mut self, op: FaultOp, handle_boot: Option<u64>) -> io::Result<()> {
        let count = self.calls.entry(op).or_insert(0);
        let index = *count;
        *count = count.saturating_add(1);
        // The fault is spent on its call even if that call fails for another reason, so a
        // stale fault can never fire later than asked.
        let mut fault = None;
        self.faults.retain(|&(o, at, kind)| {
            let hit = o == op && at == index;
            if hit && fault.is_none() {
                fault = Some(kind);
            }
            !hit
        });
        if handle_boot.is_some_and(|boot| boot != self.boot) || self.powered_off {
            return Err(eio());
        }
        if let Some(kind) = fault {
            return Err(kind.error());
        }
        if op.is_mutating() {
            match self.power_budget {
                Some(0) => {
                    self.powered_off = true;
                    self.power_budget = None;
                    return Err(eio());
                }
                Some(left) => self.power_budget = Some(left - 1),
                None => {}
            }
        }
        Ok(())
    }

    fn inode(&mut self, id: InodeId) -> io::Result<&mut Inode> {
        // Inodes are only dropped at a crash, which also kills every handle to them.
        self.inodes.get_mut(&id).ok_or_else(eio)
    }

    fn new_inode(&mut self) -> InodeId {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::default());
        id
    }

    fn crash(&mut self) {
        let rng = &mut self.rng;
        let kept = rng.usize(0..=self.pending_names.len());
        for op in self.pending_names.drain(..).take(kept) {
            op.apply(&mut self.durable_names);
        }
        self.current_names = self.durable_names.clone();
        // Unnamed inodes are unreachable once their handles die: forget them.
        let live: BTreeSet<InodeId> = self.durable_names.values().copied().collect();
        self.inodes.retain(|id, _| live.contains(id));
        for inode in self.inodes.values_mut() {
            let pending = mem::take(&mut inode.pending);
            let kept = rng.usize(0..=pending.len());
            for (i, op) in pending.iter().take(kept).enumerate() {
                match op {
                    PendingOp::SetLen(len) => inode.durable.resize(*len, 0),
                    PendingOp::Write { offset, data } if i + 1 == kept => {
                        crash_write(rng, &mut inode.durable, *offset, data);
                    }
                    PendingOp::Write { offset, data } => {
                        write_into(&mut inode.durable, *offset, data)
                    }
                }
            }
            inode.current = inode.durable.clone();
        }
        self.boot += 1;
        self.power_budget = None;
        self.powered_off = false;
        self.faults.clear();
    }
}

/// Applies the write that was in flight when the power went out: whole, torn or garbled.
fn crash_write(rng: &mut fastrand::Rng, durable: &mut Vec<u8>, offset: usize, data: &[u8]) {
    match rng.u8(0..8) {
        0 | 1 => {
            let first = offset / SECTOR;
            let last = (offset + data.len().saturating_sub(1)) / SECTOR;
            // Strictly fewer sectors than the write touches, or it would not be torn.
            let sectors = rng.usize(0..=last - first);
            let kept = ((first + sectors) * SECTOR).saturating_sub(offset).min(data.len());
            write_into(durable, offset, &data[..kept]);
        }
        2 => {
            let mut garbage = vec![0; data.len()];
            rng.fill(&mut garbage);
            write_into(durable, offset, &garbage);
        }
        _ => write_into(durable, offset, data),
    }
}

impl SimStorage {
    /// An empty disk whose every random choice derives from `seed`.
    pub fn new(seed: u64) -> Self {
        let state = State {
            rng: fastrand::Rng::with_seed(seed),
            boot: 0,
            next_inode: 0,
            inodes: BTreeMap::new(),
            durable_names: BTreeMap::new(),
            current_names: BTreeMap::new(),
            pending_names: Vec::new(),
            power_budget: None,
            powered_off: false,
            calls: HashMap::new(),
            faults: Vec::new(),
        };
        Self { state: Arc::new(Mutex::new(state)) }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Simulated power loss and reboot: each file and the namespace keep a random prefix of
    /// their unsynced operations, the last kept write possibly torn or garbled; power cuts and
    /// pending faults are cleared and every open handle dies: all its calls fail with `EIO`.
    pub fn crash(&self) {
        self.state().crash();
    }

    /// After `ops` more mutating calls, the next mutating call and every later call of any
    /// kind fail with `EIO` and no effect, until [`crash`](Self::crash). Models the power
    /// going out at an exact point while threads keep running. No effect while the power is
    /// already off.
    pub fn power_cut_after(&self, ops: u64) {
        let mut state = self.state();
        if !state.powered_off {
            state.power_budget = Some(ops);
        }
    }

    /// Whether a power cut is in effect.
    pub fn is_powered_off(&self) -> bool {
        self.state().powered_off
    }

    /// Arms a one-shot fault: call number `fault.nth` (0-based, counted from now) of
    /// `fault.op` fails with `fault.kind` and has no effect. Several faults may be pending.
    pub fn inject(&self, fault: Fault) {
        let mut state = self.state();
        let at = state.calls.get(&fault.op).copied().unwrap_or(0).saturating_add(fault.nth);
        state.faults.push((fault.op, at, fault.kind));
    }

    /// How many calls of `op` have been made so far, failed ones included.
    pub fn op_count(&self, op: FaultOp) -> u64 {
        self.state().calls.get(&op).copied().unwrap_or(0)
    }

    /// Flips bit `bit` (0 to 7) of the byte at `offset` of file `name`, in both its current
    /// and its durable contents where they are that long: media corruption. Meant for files
    /// without unsynced changes. Bypasses faults and power cuts.
    ///
    /// # Errors
    /// `NotFound` if there is no such file, `InvalidInput` if `bit > 7` or `offset` is past
    /// the end of both contents. Nothing changes on error.
    pub fn flip_bit(&self, name: &str, offset: u64, bit: u8) -> io::Result<()> {
        let mut state = self.state();
        let id = *state.current_names.get(name).ok_or_else(|| not_found(name))?;
        let inode = state.inode(id)?;
        let offset = usize::try_from(offset).unwrap_or(usize::MAX);
        if bit > 7 || (offset >= inode.current.len() && offset >= inode.durable.len()) {
            return Err(invalid("bit or offset out of range"));
        }
        for bytes in [&mut inode.current, &mut inode.durable] {
            if let Some(byte) = bytes.get_mut(offset) {
                *byte ^= 1 << bit;
            }
        }
        Ok(())
    }

    /// The contents of `name` that survive a crash losing every unsynced change; `None` if
    /// no durable file has that name.
    pub fn durable_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let state = self.state();
        let id = state.durable_names.get(name)?;
        state.inodes.get(id).map(|inode| inode.durable.clone())
    }

    /// The contents a read of `name` sees now; `None` if there is no such file.
    pub fn current_bytes(&self, name: &str) -> Option<Vec<u8>> {
        let state = self.state();
        let id = state.current_names.get(name)?;
        state.inodes.get(id).map(|inode| inode.current.clone())
    }

    /// Replaces the contents of `name` durably, creating the file (durably) if missing. For
    /// corruption tests on a quiescent disk; bypasses faults and power cuts.
    pub fn set_bytes(&self, name: &str, bytes: Vec<u8>) {
        let mut state = self.state();
        let id = match state.current_names.get(name) {
            Some(&id) => id,
            None => {
                let id = state.new_inode();
                state.current_names.insert(name.to_owned(), id);
                id
            }
        };
        state.durable_names.insert(name.to_owned(), id);
        let inode = state.inodes.entry(id).or_default();
        inode.durable.clone_from(&bytes);
        inode.current = bytes;
        inode.pending.clear();
    }

    fn handle(&self, state: &State, inode: InodeId) -> Arc<dyn StorageFile> {
        Arc::new(SimFile { state: self.state.clone(), inode, boot: state.boot })
    }
}

impl fmt::Debug for SimStorage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The contents would drown any message they appear in: show only a summary.
        let state = self.state();
        f.debug_struct("SimStorage")
            .field("boot", &state.boot)
            .field("files", &state.current_names.len())
            .field("powered_off", &state.powered_off)
            .finish_non_exhaustive()
    }
}

impl Storage for SimStorage {
    fn open(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state();
        state.begin(FaultOp::Open, None)?;
        let id = *state.current_names.get(name).ok_or_else(|| not_found(name))?;
        Ok(self.handle(&state, id))
    }

    fn create_new(&self, name: &str) -> io::Result<Arc<dyn StorageFile>> {
        let mut state = self.state();
        state.begin(FaultOp::CreateNew, None)?;
        if state.current_names.contains_key(name) {
            return Err(io::Error::new(io::ErrorKind::AlreadyExists, format!("{name:?} exists")));
        }
        let inode = state.new_inode();
        let op = NameOp::Create { name: name.to_owned(), inode };
        op.apply(&mut state.current_names);
        state.pending_names.push(op);
        Ok(self.handle(&state, inode))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut state = self.state();
        state.begin(FaultOp::List, None)?;
        Ok(state.current_names.keys().cloned().collect())
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        let mut state = self.state();
        state.begin(FaultOp::Remove, None)?;
        if !state.current_names.contains_key(name) {
            return Err(not_found(name));
        }
        let op = NameOp::Remove { name: name.to_owned() };
        op.apply(&mut state.current_names);
        state.pending_names.push(op);
        Ok(())
    }

    fn rename(&self, from: &str, to: &str) -> io::Result<()> {
        let mut state = self.state();
        state.begin(FaultOp::Rename, None)?;
        if !state.current_names.contains_key(from) {
            return Err(not_found(from));
        }
        if from != to {
            let op = NameOp::Rename { from: from.to_owned(), to: to.to_owned() };
            op.apply(&mut state.current_names);
            state.pending_names.push(op);
        }
        Ok(())
    }

    fn sync_dir(&self) -> io::Result<()> {
        let mut state = self.state();
        state.begin(FaultOp::SyncDir, None)?;
        state.durable_names = state.current_names.clone();
        state.pending_names.clear();
        Ok(())
    }
}

/// A handle to one inode, valid until the next crash.
struct SimFile {
    state: Arc<Mutex<State>>,
    inode: InodeId,
    boot: u64,
}

impl SimFile {
    /// Locks the disk and admits one call of `op` on this handle's inode.
    fn begin(&self, op: FaultOp) -> io::Result<MutexGuard<'_, State>> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.begin(op, Some(self.boot))?;
        Ok(state)
    }
}

impl fmt::Debug for SimFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFile").field("inode", &self.inode).field("boot", &self.boot).finish()
    }
}

impl StorageFile for SimFile {
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        let mut state = self.begin(FaultOp::Read)?;
        let data = &state.inode(self.inode)?.current;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(data.len());
        let n = buf.len().min(data.len() - start);
        buf[..n].copy_from_slice(&data[start..start + n]);
        Ok(n)
    }

    fn write_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.begin(FaultOp::Write)?;
        let offset = usize::try_from(offset)
            .ok()
            .filter(|offset| offset.checked_add(buf.len()).is_some())
            .ok_or_else(|| invalid("write past the largest possible offset"))?;
        if buf.is_empty() {
            return Ok(()); // Like `pwrite`, writing nothing does not extend the file.
        }
        let inode = state.inode(self.inode)?;
        write_into(&mut inode.current, offset, buf);
        inode.pending.push(PendingOp::Write { offset, data: buf.to_vec() });
        Ok(())
    }

    fn sync(&self) -> io::Result<()> {
        let mut state = self.begin(FaultOp::Sync)?;
        let inode = state.inode(self.inode)?;
        inode.durable.clone_from(&inode.current);
        inode.pending.clear();
        Ok(())
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.begin(FaultOp::SetLen)?;
        let len = usize::try_from(len).map_err(|_| invalid("length too large"))?;
        let inode = state.inode(self.inode)?;
        inode.current.resize(len, 0);
        inode.pending.push(PendingOp::SetLen(len));
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut state = self.begin(FaultOp::Len)?;
        let len = state.inode(self.inode)?.current.len();
        u64::try_from(len).map_err(io::Error::other)
    }
}

#[cfg(test)]
mod tests {
    use std::{io, sync::Arc};

    use super::{Fault, FaultKind, FaultOp, SECTOR, SimStorage};
    use crate::storage::{Storage, StorageFile};

    /// Whether `err` is what an injected `kind` produces.
    fn is(err: &io::Error, kind: FaultKind) -> bool {
        let want = kind.error();
        err.kind() == want.kind() && err.raw_os_error() == want.raw_os_error()
    }

    fn read_all(file: &dyn StorageFile) -> Vec<u8> {
        let mut buf = vec![0; usize::try_from(file.len().unwrap()).unwrap()];
        assert_eq!(file.read_at(&mut buf, 0).unwrap(), buf.len());
        buf
    }

    /// A fresh disk with one empty file `f` whose creation is durable.
    fn disk_with_file(seed: u64) -> (SimStorage, Arc<dyn StorageFile>) {
        let disk = SimStorage::new(seed);
        let file = disk.create_new("f").unwrap();
        disk.sync_dir().unwrap();
        (disk, file)
    }

    #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
    enum Outcome {
        Prefix(usize),
        Torn,
        Garbled,
    }

    #[test]
    fn crash_keeps_a_prefix_of_unsynced_ops_possibly_torn_or_garbled() {
        let writes = [(300, vec![2; 900]), (1000, vec![3; 600])];
        let mut seen = std::collections::BTreeSet::new();
        for seed in 0..300 {
            let (disk, file) = disk_with_file(seed);
            file.write_at(&[1; 1000], 0).unwrap();
            file.sync().unwrap();
            // The unsynced ops: write, set_len, write.
            file.write_at(&writes[0].1, writes[0].0).unwrap();
            file.set_len(1100).unwrap();
            file.write_at(&writes[1].1, writes[1].0).unwrap();
            disk.crash();
            let got = disk.current_bytes("f").unwrap();
            assert_eq!(disk.durable_bytes("f").as_ref(), Some(&got));

            // Every state a crash may leave: the synced base plus the first k ops.
            let mut states = vec![vec![1u8; 1000]];
            let mut s = states[0].clone();
            super::write_into(&mut s, 300, &writes[0].1);
            states.push(s.clone());
            s.resize(1100, 0);
            states.push(s.clone());
            super::write_into(&mut s, 1000, &writes[1].1);
            states.push(s);

            let mut outcome = states.iter().position(|s| *s == got).map(Outcome::Prefix);
            for (k, (offset, data)) in [(1, &writes[0]), (3, &writes[1])] {
                let (offset, prev) = (usize::try_from(*offset).unwrap(), &states[k - 1]);
                let end = offset + data.len();
                for sectors in 1..=(end - 1) / SECTOR - offset / SECTOR {
                    let kept = (offset / SECTOR + sectors) * SECTOR - offset;
                    let mut torn = prev.clone();
                    super::write_into(&mut torn, offset, &data[..kept]);
                    if torn == got {
                        outcome = outcome.or(Some(Outcome::Torn));
                    }
                }
                let mut around = got.clone();
                let mut expected = prev.clone();
                if around.len() == end.max(prev.len()) && got[offset..end] != data[..] {
                    around[offset..end].fill(0);
                    expected.resize(around.len(), 0);
                    expected[offset..end].fill(0);
                    if around == expected {
                        outcome = outcome.or(Some(Outcome::Garbled));
                    }
                }
            }
            let outcome = outcome.unwrap_or_else(|| panic!("seed {seed}: impossible state"));
            seen.insert(outcome);
        }
        // Every kind of outcome occurs, including losing everything and keeping everything.
        for outcome in [Outcome::Prefix(0), Outcome::Prefix(3), Outcome::Torn, Outcome::Garbled] {
            assert!(seen.contains(&outcome), "{outcome:?} never happened: {seen:?}");
        }
    }

    #[test]
    fn synced_writes_always_survive() {
        let data: Vec<u8> = (0..2000u32).map(|i| u8::try_from(i % 251).unwrap()).collect();
        for seed in 0..100 {
            let (disk, file) = disk_with_file(seed);
            file.write_at(&data, 0).unwrap();
            file.sync().unwrap();
            assert_eq!(disk.durable_bytes("f").unwrap(), data);
            file.write_at(&[9; 100], 3000).unwrap(); // unsynced, elsewhere
            disk.crash();
            let got = disk.current_bytes("f").unwrap();
            assert_eq!(got[..2000], data[..], "seed {seed}");
        }
    }

    #[test]
    fn creation_is_durable_only_after_sync_dir() {
        let (mut vanished, mut survived) = (false, false);
        for seed in 0..64 {
            let disk = SimStorage::new(seed);
            let file = disk.create_new("new").unwrap();
            file.write_at(b"data", 0).unwrap();
            file.sync().unwrap();
            assert_eq!(disk.durable_bytes("new"), None);
            disk.crash();
            match disk.current_bytes("new") {
                None => vanished = true,
                Some(bytes) => {
                    assert_eq!(bytes, b"data");
                    survived = true;
                }
            }
            // With sync_dir, the file always survives.
            let file = disk.create_new("kept").unwrap();
            file.write_at(b"kept", 0).unwrap();
            file.sync().unwrap();
            disk.sync_dir().unwrap();
            disk.crash();
            assert_eq!(disk.current_bytes("kept").unwrap(), b"kept");
        }
        assert!(vanished && survived);
    }

    #[test]
    fn rename_over_a_file_is_atomic_across_a_crash() {
        for seed in 0..64 {
            let disk = SimStorage::new(seed);
            disk.set_bytes("a", b"old".to_vec());
            let tmp = disk.create_new("tmp").unwrap();
            tmp.write_at(b"new", 0).unwrap();
            tmp.sync().unwrap();
            disk.rename("tmp", "a").unwrap();
            assert_eq!(disk.list().unwrap(), ["a"]);
            disk.crash();
            let a = disk.current_bytes("a").unwrap();
            assert!(a == b"old" || a == b"new", "seed {seed}: {a:?}");
        }
    }

    #[test]
    fn power_cut_fails_the_next_mutating_call_and_everything_after() {
        let (disk, file) = disk_with_file(1);
        file.write_at(b"abc", 0).unwrap();
        file.sync().unwrap();
        disk.power_cut_after(2);
        // Reads do not use up the budget.
        for _ in 0..3 {
            assert_eq!(read_all(&*file), b"abc");
            disk.list().unwrap();
            disk.open("f").unwrap();
        }
        file.write_at(b"xyz", 0).unwrap();
        file.sync().unwrap();
        assert!(!disk.is_powered_off());
        assert!(is(&file.write_at(b"!!!", 0).unwrap_err(), FaultKind::Eio));
        assert!(disk.is_powered_off());
        assert!(is(&file.read_at(&mut [0; 3], 0).unwrap_err(), FaultKind::Eio));
        assert!(is(&file.len().unwrap_err(), FaultKind::Eio));
        assert!(is(&disk.list().unwrap_err(), FaultKind::Eio));
        assert!(is(&disk.open("f").unwrap_err(), FaultKind::Eio));
        assert!(is(&disk.create_new("g").unwrap_err(), FaultKind::Eio));
        assert!(is(&disk.sync_dir().unwrap_err(), FaultKind::Eio));
        disk.crash();
        assert!(!disk.is_powered_off());
        // The failed write had no effect, and the disk works again.
        assert_eq!(disk.current_bytes("f").unwrap(), b"xyz");
        assert_eq!(disk.list().unwrap(), ["f"]);
        let file = disk.open("f").unwrap();
        file.write_at(b"ok", 3).unwrap();
        assert_eq!(read_all(&*file), b"xyzok");
    }

    #[test]
    fn injected_fault_fails_exactly_that_call_without_effect() {
        let (disk, file) = disk_with_file(2);
        disk.inject(Fault { op: FaultOp::Write, nth: 1, kind: FaultKind::Enospc });
        file.write_at(b"one", 0).unwrap();
        let err = file.write_at(b"two", 3).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        #[cfg(target_os = "linux")]
        assert_eq!(err.raw_os_error(), Some(28));
        assert_eq!(disk.current_bytes("f").unwrap(), b"one");
        file.write_at(b"three", 3).unwrap();
        assert_eq!(disk.op_count(FaultOp::Write), 3);

        // A failed sync leaves the writes pending: not durable, still readable.
        disk.inject(Fault { op: FaultOp::Sync, nth: 0, kind: FaultKind::Eio });
        assert!(is(&file.sync().unwrap_err(), FaultKind::Eio));
        assert_eq!(disk.durable_bytes("f").unwrap(), b"");
        assert_eq!(read_all(&*file), b"onethree");
        file.sync().unwrap();
        assert_eq!(disk.durable_bytes("f").unwrap(), b"onethree");

        // Namespace calls too, counted from the injection.
        disk.open("f").unwrap();
        disk.inject(Fault { op: FaultOp::Open, nth: 1, kind: FaultKind::Eio });
        disk.inject(Fault { op: FaultOp::Rename, nth: 0, kind: FaultKind::Eio });
        assert!(is(&disk.rename("f", "g").unwrap_err(), FaultKind::Eio));
        assert_eq!(disk.list().unwrap(), ["f"]);
        disk.open("f").unwrap();
        assert!(is(&disk.open("f").unwrap_err(), FaultKind::Eio));
        disk.open("f").unwrap();
        assert_eq!(disk.op_count(FaultOp::Open), 4);
        assert_eq!(disk.op_count(FaultOp::Rename), 1);
    }

    #[test]
    fn handles_opened_before_a_crash_are_dead() {
        let (disk, file) = disk_with_file(3);
        file.write_at(b"kept", 0).unwrap();
        file.sync().unwrap();
        disk.crash();
        assert!(is(&file.read_at(&mut [0; 4], 0).unwrap_err(), FaultKind::Eio));
        assert!(is(&file.write_at(b"lost", 0).unwrap_err(), FaultKind::Eio));
        assert!(is(&file.set_len(0).unwrap_err(), FaultKind::Eio));
        assert!(is(&file.sync().unwrap_err(), FaultKind::Eio));
        assert!(is(&file.len().unwrap_err(), FaultKind::Eio));
        let file = disk.open("f").unwrap();
        assert_eq!(read_all(&*file), b"kept");
    }

    #[test]
    fn flip_bit_changes_exactly_one_bit() {
        let disk = SimStorage::new(4);
        disk.set_bytes("f", vec![0; 64]);
        disk.flip_bit("f", 10, 3).unwrap();
        let mut want = vec![0; 64];
        want[10] = 8;
        assert_eq!(disk.current_bytes("f").unwrap(), want);
        assert_eq!(disk.durable_bytes("f").unwrap(), want);
        assert_eq!(read_all(&*disk.open("f").unwrap()), want);
        assert_eq!(disk.flip_bit("f", 64, 0).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(disk.flip_bit("f", 0, 8).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(disk.flip_bit("g", 0, 0).unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(disk.current_bytes("f").unwrap(), want);
    }

    /// A workload with crashes; returns what is left.
    fn run(seed: u64) -> Vec<(String, Vec<u8>)> {
        let disk = SimStorage::new(seed);
        for round in 0..5u8 {
            let name = format!("file{round}");
            let file = disk.create_new(&name).unwrap();
            for i in 0..20u8 {
                file.write_at(&[round ^ i; 700], u64::from(i) * 300).unwrap();
                if i % 7 == 0 {
                    file.sync().unwrap();
                }
            }
            if round % 2 == 0 {
                disk.sync_dir().unwrap();
            }
            disk.crash();
        }
        let names = disk.list().unwrap();
        names.into_iter().map(|n| (n.clone(), disk.current_bytes(&n).unwrap())).collect()
    }

    #[test]
    fn same_seed_and_calls_give_the_same_result() {
        assert_eq!(run(7), run(7));
        assert!((0..10).any(|seed| run(seed) != run(7)), "the seed must matter");
    }

    #[test]
    fn behaves_like_a_directory_of_files() {
        let (disk, file) = disk_with_file(5);
        file.write_at(b"xy", 4).unwrap();
        assert_eq!(read_all(&*file), b"\0\0\0\0xy"); // gap zero-filled
        let mut buf = [9; 4];
        assert_eq!(file.read_at(&mut buf, 4).unwrap(), 2); // short at EOF
        assert_eq!(file.read_at(&mut buf, 100).unwrap(), 0);
        file.set_len(5).unwrap();
        file.set_len(7).unwrap();
        assert_eq!(read_all(&*file), b"\0\0\0\0x\0\0");
        file.write_at(b"", 100).unwrap();
        assert_eq!(file.len().unwrap(), 7);

        let kind = |r: io::Result<Arc<dyn StorageFile>>| r.unwrap_err().kind();
        assert_eq!(kind(disk.create_new("f")), io::ErrorKind::AlreadyExists);
        assert_eq!(kind(disk.open("g")), io::ErrorKind::NotFound);
        assert_eq!(disk.remove("g").unwrap_err().kind(), io::ErrorKind::NotFound);
        assert_eq!(disk.rename("g", "h").unwrap_err().kind(), io::ErrorKind::NotFound);

        // A clone is the same disk; an unlinked file stays usable through its handle.
        let clone = disk.clone();
        clone.remove("f").unwrap();
        assert!(disk.list().unwrap().is_empty());
        file.write_at(b"z", 0).unwrap();
        assert_eq!(read_all(&*file)[0], b'z');
        disk.sync_dir().unwrap();
        disk.crash();
        assert!(disk.list().unwrap().is_empty());
    }

    #[test]
    fn set_bytes_is_durable() {
        for seed in 0..16 {
            let disk = SimStorage::new(seed);
            disk.set_bytes("f", b"hello".to_vec());
            disk.crash();
            assert_eq!(disk.current_bytes("f").unwrap(), b"hello");
            let file = disk.open("f").unwrap();
            file.write_at(b"J", 0).unwrap();
            disk.set_bytes("f", b"world".to_vec());
            disk.crash();
            assert_eq!(disk.durable_bytes("f").unwrap(), b"world");
        }
    }
}
