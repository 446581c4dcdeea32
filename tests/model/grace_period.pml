/*
 * A model of rcu's grace-period protocol, for the spin model checker.
 *
 * How to run (spin 6 generates the verifier, compiles it and runs it, and
 * leaves pan and any grace_period.pml.trail in the current directory, which
 * .gitignore covers at the repository root):
 *
 *     spin -run tests/model/grace_period.pml             # "errors: 0"
 *     spin -DBUSTED=k -run tests/model/grace_period.pml  # errors >= 1
 *     spin -DBUSTED=k -t -p tests/model/grace_period.pml # replays the trail
 *
 * (the replay needs the -D switches of the run that wrote the trail).
 *
 * Switches (cpp macros, -DNAME on spin's command line), each combination a
 * separate run; tests/model/test_grace_period_model.py runs all of them:
 *
 *     QSBR            the qsbr read side (quiescent_state, offline, online)
 *                     instead of the epoch one (lock, unlock, nesting).
 *     NOGIL           the driver of a free-threaded build: no handoff gate,
 *                     no STEP_ASIDE flags (default: the GIL build's driver).
 *     UNBOUNDED_GATE  a reader that steps aside waits for its gate to open,
 *                     however long (default: it may also give up at any
 *                     moment, as the real wait times out after a switch
 *                     interval). Without the timeout, a wait that only the
 *                     reader itself could end is a deadlock: this run checks
 *                     that a reader waits only for the driver's bounded
 *                     handoff, never for a grace period that waits for it.
 *                     It holds in both flavors because a reader whose
 *                     counter is older than the domain's (a qsbr holdout of
 *                     a grace period that bumped since its quiescent state)
 *                     does not step aside; BUSTED=8 is the variant that
 *                     does, and deadlocks.
 *     NR, NS, NW      the bounds, see below.
 *     BUSTED=k        a known-wrong variant, see "Busted variants" below.
 *
 * Every property is a safety property of the default search (no -a, no LTL
 * claim): plain "spin -run" checks them all.
 *
 *  (1) Reclamation. A writer publishes a new version of the shared pointer,
 *      synchronizes, and marks the version it replaced reclaimed. A reader
 *      asserts, at the end of its read section (epoch: before unlock; qsbr:
 *      before its next quiescent state or offline), that no version it
 *      loaded inside the section has been reclaimed.
 *  (2) No lost wake-up. Every reader ends idle (epoch: outside any section;
 *      qsbr: offline) without unregistering, and sleeping on the wake-up
 *      signal is not an end state: a driver left asleep with no holdout is a
 *      deadlock, which spin reports as an "invalid end state". The final
 *      monitor also asserts that, once every thread is done, no flag, gate or
 *      driver role is left behind.
 *  (3) A reader waits only for the bounded handoff, outside its section:
 *      it asserts depth 0 and, for the epoch flavor, a visible ctr of 0
 *      whenever it blocks on a gate (at most once per gate, as the code
 *      does), and with UNBOUNDED_GATE the run must still be deadlock-free.
 *      The gate is released only
 *      after the readers that stepped aside on it have been seen: a reader
 *      let through by a gate (not by its timeout) asserts that a scan that
 *      began after it loaded the gate has finished, or that the grace
 *      period that armed the gate has completed.
 *
 * Memory model. The reader side is the native read side's, on TSO (x86):
 * each reader's stores to its own ctr go through a store buffer (one entry:
 * a second store first drains the first, a subset of TSO's behaviours) that
 * a separate process drains at any moment; a reader's loads of its own ctr
 * forward from the buffer. A seq_cst fence drains the buffer, and so does
 * the atomic read-modify-write of signalling the wake-up semaphore. Loads are
 * not reordered with loads, stores not with stores (TSO). The driver's
 * stores are seq_cst (or release stores followed by a seq_cst one before
 * anything else is loaded), which on TSO means each reaches memory before
 * the driver's next load: they are written to memory directly. The orders
 * modelled are those of the C read side:
 *
 *   epoch lock     c = load(gp.ctr); store(ctr, c); FENCE; loads of data
 *   epoch unlock   store(ctr, 0); FENCE; load(waiting) -> slow path
 *   qsbr qs        store(ctr, load(gp.ctr)); FENCE; load(waiting) -> slow path
 *   qsbr offline   store(ctr, 0); FENCE; waiting == HOLDOUT -> signal
 *   qsbr online    store(ctr, load(gp.ctr)); FENCE
 *   slow path      waiting == HOLDOUT -> signal; gate armed and not the one
 *                  last stepped aside for -> wait on it (bounded)
 *   driver         publish; store(gp.ctr, G+1); waiting = HOLDOUT on the
 *                  holdouts (and STEP_ASIDE on the others, GIL builds);
 *                  per scan: arm a fresh gate, clear the signal, FENCE, load
 *                  every holdout's ctr (ongoing iff ctr != 0 && ctr != G+1),
 *                  open the previous gate, sleep on the signal.
 *
 * The driver, the sharing of grace periods between concurrent synchronize
 * callers (rcu/_grace.py: _wait_for, _run_grace_period, _wait_for_readers,
 * _end_handoff_locked) and the condition variable they share are modelled
 * step by step: a woken waiter or the next driver ends a handoff that a
 * grace period left with sleepers.
 *
 * Bounds, and what they cover. By default NR = 2 readers, each NS = 2 read
 * sections (epoch: each with a nested lock/unlock, which store nothing,
 * inside; qsbr: NS = 1, an
 * offline/online pair, a section and a quiescent state), and NW = 1 writer:
 * one update, one synchronize, one grace period (gp.ctr 1..2), in which
 * holdouts and bystanders (STEP_ASIDE) coexist and a reader steps aside on
 * one gate, then meets the next. NR=1 NW=2 adds a second writer: 1 or 2
 * grace periods, shared or not, one of which may start while the other
 * writer publishes, and a handoff left to the woken waiter. NR=2 NS=1 NW=2
 * combines both (epoch: ten million states; qsbr: four times more), and
 * NR=1 NS=1 NW=3 lets the next driver end a handoff before the woken
 * waiter does. One reader and one writer already show each busted variant
 * below. Not covered: registration and
 * thread exit (readers are registered from the start and never leave),
 * deadlines, stall warnings and abort() (waits have no timeout: the model
 * asks that they end anyway), counter wrap (Python integers do not wrap).
 *
 * Busted variants (spin -DBUSTED=k -run grace_period.pml); each must fail:
 *
 *   1  The read side's fence is removed (epoch lock; qsbr online): the
 *      counter sits in the store buffer while the section loads the old
 *      version; the driver reads 0, the grace period completes and the
 *      version is reclaimed under the reader: assertion (1).
 *   2  The reader stores its counter after its first load of shared data
 *      (epoch lock; qsbr online): same outcome, with the fence in place.
 *   3  The driver reads the counters before it sets waiting: a holdout that
 *      leaves between the two sees waiting clear and does not signal; the
 *      driver sleeps with no holdout left: invalid end state (2).
 *   4  The driver opens the previous handoff gate before its scan instead of
 *      after: a reader that stepped aside goes on before the driver has seen
 *      it leave: the gate assertion of (3). (GIL builds only.)
 *   5  The unlock's fence is removed (epoch unlock; qsbr offline): the load
 *      of waiting passes the store of 0, the driver still reads the old
 *      counter and sleeps, the reader never signals: invalid end state (2),
 *      or first, in the epoch flavor, (3)'s check that the reader's ctr is
 *      visibly 0 when it steps aside.
 *   6  A holdout steps aside before it signals: it waits on a gate that only
 *      the driver's next scan opens, and the driver waits for its signal.
 *      Real waits time out, so this is a switch interval lost per grace
 *      period; UNBOUNDED_GATE (implied) shows it as a deadlock (3).
 *   7  A synchronize that arrives while a grace period is in progress waits
 *      for that one (completed + 1) instead of the next (completed + 2): the
 *      grace period began before the caller's update, a reader that started
 *      after its bump still holds the replaced version: assertion (1).
 *      (Implies NW=2 and NR=1 unless given.)
 *   8  A reader steps aside whatever its counter: a qsbr holdout of a later
 *      grace period (a bump landed since its quiescent state, while it was
 *      in the slow path) blocks on that grace period's gate, which waits for
 *      it. Real waits time out (a switch interval lost); UNBOUNDED_GATE
 *      (implied, with QSBR, NW=2 and NR=1) shows it as a deadlock.
 */

#ifndef BUSTED
#define BUSTED 0
#endif
#if BUSTED == 6
#define UNBOUNDED_GATE
#endif
#if BUSTED == 8         /* a holdout blocks on a later grace period's gate (qsbr) */
#define UNBOUNDED_GATE
#define QSBR
#ifndef NW
#define NW 2
#define NR 1
#endif
#endif

#if BUSTED == 7 && !defined(NW)
#define NW 2            /* two writers: one publishes during the other's grace period */
#define NR 1            /* one reader is enough to be caught */
#endif
#ifndef NR
#define NR 2            /* reader threads */
#endif
#if !defined(NS) && defined(QSBR)
#define NS 1            /* qsbr: one offline/online pair, section, quiescent state */
#endif
#ifndef NS
#define NS 2            /* read sections per reader */
#endif
#ifndef NW
#define NW 1            /* writers: one update and one synchronize each */
#endif
#define NG 12           /* gate ids 1..NG-1 (0 is "no gate") */

#define NOT_WAITING 0
#define STEP_ASIDE  1
#define HOLDOUT     2

/* Shared memory. */
byte gpctr = 1;         /* GracePeriodState.ctr; driver writes */
byte ptr = 0;           /* the published version, 0..NW */
bit reclaimed[NW + 1];  /* version v reclaimed by its writer */
byte ctr[NR];           /* Reader.ctr as memory holds it */
byte waiting[NR];       /* Reader.waiting; whoever holds the driver's role writes */
bit sig;                /* the wake-up semaphore: 1 = signalled */
byte gate;              /* GracePeriodState.gate: 0 = None */
bit closed[NG];         /* closed[g]: gate g's lock is held */

/* Each reader's one-entry store buffer for its ctr. */
bit sb_full[NR];
byte sb_val[NR];

/* GracePeriods state under _cond (a mutex and a condition variable). */
bit cond_mutex;
byte notified;          /* notify_all generation */
byte completed;
bit gp_active;
byte sleepers;
byte handoff;           /* the handoff's gate, 0 = None (its readers: all of them) */

/* Ghost state, for the assertions only. */
byte ngates;            /* gates armed so far */
byte gate_gp[NG];       /* the grace period (completed + 1) that armed gate g */
byte scans_started;
byte scans_done;
byte finished;          /* reader and writer processes done */

/* ------------------------------------------------------------------ */
/* The reader's TSO store buffer. */

inline flush(i) {
    if
    :: sb_full[i] -> ctr[i] = sb_val[i]; sb_full[i] = 0
    :: else
    fi
}

inline store_ctr(i, v) {
    atomic { flush(i); sb_val[i] = v; sb_full[i] = 1 }
}

inline fence(i) {
    atomic { flush(i) }
}

/* The owner's own view of its ctr (store forwarding). */
#define own_ctr(i) (sb_full[i] -> sb_val[i] : ctr[i])

proctype drain(byte i) {
end:
    do
    :: atomic { sb_full[i] -> ctr[i] = sb_val[i]; sb_full[i] = 0 }
    od
}

/* GracePeriodState.signal(): a lock release, an atomic RMW (a full fence). */
inline signal(i) {
    atomic { flush(i); sig = 1 }
}

/* ------------------------------------------------------------------ */
/* Read side. */

/* Reader._flagged: the slow path of leaving a section while flagged. */
inline step_aside(i) {
    atomic { g = gate; mark = scans_started }
    if
#if BUSTED == 8
    :: g != 0 && g != stepped ->
#else
    /* The gate, then the counter: a reader whose ctr is older than the
     * domain's (qsbr: a bump landed since its quiescent state) holds up the
     * grace period in progress and must not block on its gate. */
    :: g != 0 && g != stepped && (own_ctr(i) == 0 || own_ctr(i) == gpctr) ->
#endif
        stepped = g;
        /* (3): outside the section, holding up no grace period (epoch). */
        assert(depth == 0);
#ifndef QSBR
        assert(!sb_full[i] && ctr[i] == 0);
#endif
        if
        :: atomic {
               !closed[g] ->
               /* let through: the driver has seen this reader */
               assert(scans_done > mark || completed >= gate_gp[g])
           }
#ifndef UNBOUNDED_GATE
        :: skip     /* timed out after a switch interval */
#endif
        fi
    :: else
    fi;
    atomic { g = 0; mark = 0 }
}

inline flagged(i) {
#if BUSTED == 6
    step_aside(i);
    if
    :: waiting[i] == HOLDOUT -> signal(i)
    :: else
    fi
#else
    if
    :: waiting[i] == HOLDOUT -> signal(i)
    :: else
    fi;
    step_aside(i)
#endif
}

#ifndef QSBR

/* Epoch: EpochReader.lock/unlock, nestable. */
proctype reader(byte i) {
    byte c, v, n, depth, g, stepped, mark;
    do
    :: n < NS ->
        /* outermost lock */
        c = gpctr;
#if BUSTED == 2
        v = ptr;                /* the section's first load, too early */
        store_ctr(i, c);
        fence(i);
#else
        store_ctr(i, c);        /* ORDER: before every load of the section */
#if BUSTED != 1
        fence(i);
#endif
        v = ptr;
#endif
        c = 0;
        depth = 1;
        depth = 2;              /* a nested lock: no store */
        depth = 1;              /* its unlock: no store */
        assert(!reclaimed[v]);  /* (1) */
        v = 0;
        /* outermost unlock */
        store_ctr(i, 0);        /* ORDER: before the load of waiting */
        depth = 0;
#if BUSTED != 5
        fence(i);
#endif
        if
        :: waiting[i] != NOT_WAITING -> flagged(i)
        :: else
        fi;
        n++
    :: else -> break
    od;
    finished++                  /* idle: outside any section, registered */
}

#else

/* qsbr: online from registration (ctr[i] starts at gp.ctr). */
inline offline(i) {
    store_ctr(i, 0);            /* ORDER: before the load of waiting */
#if BUSTED != 5
    fence(i);
#endif
    if
    :: waiting[i] == HOLDOUT -> signal(i)
    :: else
    fi
}

proctype reader(byte i) {
    byte c, v, n, depth, g, stepped, mark;
    do
    :: n < NS ->
        if
        :: skip                 /* online already */
        :: true ->              /* an extended quiescent state, then online */
            offline(i);
            c = gpctr;
#if BUSTED == 2
            v = ptr;            /* the next section's first load, too early */
            store_ctr(i, c);
            fence(i);
            goto loaded;
#else
            store_ctr(i, c);    /* ORDER: before every later load of data */
#if BUSTED != 1
            fence(i)
#endif
#endif
        fi;
        v = ptr;                /* a read section: nesting costs nothing */
loaded:
        depth = 1;
        c = 0;
        assert(!reclaimed[v]);  /* (1): v is in use until the quiescent state */
        v = 0;
        depth = 0;
        /* quiescent_state (the thread is online here) */
        c = gpctr;
        store_ctr(i, c);        /* ORDER: before the load of waiting */
        c = 0;
        fence(i);
        if
        :: waiting[i] != NOT_WAITING -> flagged(i)
        :: else
        fi;
        n++
    :: else -> break
    od;
    offline(i);
    finished++                  /* idle: offline, registered */
}

#endif

/* ------------------------------------------------------------------ */
/* Driver side: GracePeriods._wait_for and friends. */
/*
 * Steps that touch only the writers' own state (locals, and what _cond
 * guards, with the mutex held or free) are merged with the next step that
 * readers can see: no other process can tell them apart.
 */

inline lock_cond() {
    atomic { !cond_mutex -> cond_mutex = 1 }
}

inline unlock_cond() {
    cond_mutex = 0
}

inline open_gate(x) {
    atomic {
        assert(closed[x]);      /* a lock released twice would raise */
        closed[x] = 0;
        x = 0
    }
}

/* GracePeriods._end_handoff_locked (_cond held). */
inline end_handoff() {
    atomic {
        eg = handoff;
        handoff = 0;
        if
        :: eg != 0 -> gate = 0
        :: else
        fi
    };
    if
    :: eg != 0 ->
        do
        :: i < NR -> atomic { waiting[i] = NOT_WAITING; i++ }
        :: else -> i = 0; break
        od;
        open_gate(eg)
    :: else
    fi
}

#define ongoing(r) (ctr[r] != 0 && ctr[r] != G)

/* One scan: every holdout's ctr, after the fence. */
inline scan() {
    do
    :: i < NR ->
        atomic {
            if
            :: (hmask & (1 << i)) && !ongoing(i) ->
                hmask = hmask & ~(1 << i);
#if BUSTED != 3
                waiting[i] = left
#endif
            :: else
            fi;
            if
            :: i == 0 -> scans_started++
            :: else
            fi;
            i++;
            if
            :: i == NR -> scans_done++
            :: else
            fi
        }
    :: else -> i = 0; break
    od
}

inline set_holdouts() {
    do
    :: i < NR ->
        atomic {
            if
            :: hmask & (1 << i) -> waiting[i] = HOLDOUT
            :: else
            fi;
            i++
        }
    :: else -> i = 0; break
    od
}

/* GracePeriods._wait_for_readers: sleep until no holdout remains. */
inline wait_for_readers() {
#ifdef NOGIL
    /* time.sleep(0), then look again before flagging anyone */
    do
    :: i < NR ->
        atomic {
            if
            :: (hmask & (1 << i)) && !ongoing(i) -> hmask = hmask & ~(1 << i)
            :: else
            fi;
            i++
        }
    :: else -> i = 0; break
    od;
    left = NOT_WAITING;
#else
    left = STEP_ASIDE;
#endif
    if
    :: hmask != 0 ->
#if BUSTED != 3
        set_holdouts();
#endif
#ifndef NOGIL
        do
        :: i < NR ->
            atomic {
                if
                :: waiting[i] == NOT_WAITING -> waiting[i] = STEP_ASIDE
                :: else
                fi;
                i++
            }
        :: else -> i = 0; break
        od;
#endif
        do
        :: true ->
#ifndef NOGIL
            /* a fresh, closed gate per scan, armed under _cond */
            atomic {
                !cond_mutex ->
                ngates++;
                assert(ngates < NG);
                closed[ngates] = 1;
                gate_gp[ngates] = completed + 1;
                opened = handoff;
                handoff = ngates;
                gate = ngates
            };
#if BUSTED == 4
            if
            :: opened != 0 -> open_gate(opened)
            :: else
            fi;
#endif
#endif
#if BUSTED == 3
            /* the counters are read first, then waiting is set */
            scan();
            set_holdouts();
            sig = 0;
#else
            sig = 0;            /* gp.clear() */
            /* ORDER: set waiting, arm the gate, clear, FENCE, read ctr */
            scan();
#endif
#if !defined(NOGIL) && BUSTED != 4
            if
            :: opened != 0 -> open_gate(opened)   /* after the scan */
            :: else
            fi;
#endif
            if
            :: hmask == 0 -> break
            :: else
            fi;
            atomic { sig -> sig = 0 }   /* gp.wait(None) */
        od
        /* NOGIL's finally: the holdouts left (none, once completed) are unflagged */
    :: else
    fi;
    left = 0
}

/* GracePeriods._run_grace_period (the caller has set _active). */
inline run_grace_period() {
    atomic { G = gpctr + 1; gpctr = G }   /* ORDER: after the publication, before the reads */
    do
    :: i < NR ->
        atomic {
            if
            :: ongoing(i) -> hmask = hmask | (1 << i)
            :: else
            fi;
            i++
        }
    :: else -> i = 0; break
    od;
    if
    :: hmask != 0 -> wait_for_readers()
    :: else
    fi
}

proctype writer(byte me) {
    byte old, target, G, hmask, i, left, opened, eg, gen;
    /* Pointer update under the writers' lock: publish, keep the old one */
    atomic { old = ptr; ptr = me };
    /* synchronize(): the number of the grace period it needs */
    atomic {
        !cond_mutex ->
#if BUSTED == 7
        target = completed + 1
#else
        target = completed + (gp_active -> 2 : 1)
#endif
    };
    /* _wait_for(target) */
    do
    :: true ->
        lock_cond();
        do
        :: atomic { completed >= target -> cond_mutex = 0 };
            goto done
        :: atomic { completed < target && !gp_active };
            end_handoff();      /* take over what a handoff left */
            atomic { gp_active = 1; cond_mutex = 0 };
            break
        :: atomic {
               completed < target && gp_active ->
               /* sleep: Condition.wait() releases the mutex */
               sleepers++;
               gen = notified;
               cond_mutex = 0
           };
            atomic {
                notified != gen && !cond_mutex ->   /* a later notify_all */
                cond_mutex = 1;
                gen = 0;
                sleepers--
            };
            if
            :: !gp_active -> end_handoff()
            :: else
            fi
        od;
        run_grace_period();
        /* the grace period is over */
        atomic { !cond_mutex -> cond_mutex = 1; gp_active = 0; completed++; G = 0 };
        if
        :: sleepers == 0 -> end_handoff()
        :: else                 /* the first thread it wakes ends the handoff */
        fi;
        atomic { notified++; cond_mutex = 0 }   /* notify_all */
    od;
done:
    atomic { reclaimed[old] = 1; finished++ }   /* the replaced version is reclaimed */
}

/* (2): once everybody is done, no driver, sleeper, gate or flag is left. */
proctype monitor() {
    byte i;
    finished == NR + NW;
    assert(!gp_active && sleepers == 0 && handoff == 0 && gate == 0);
    do
    :: i < NR -> assert(waiting[i] == NOT_WAITING); i++
    :: else -> break
    od
}

init {
    byte i;
    atomic {
        do
        :: i < NR ->
#ifdef QSBR
            ctr[i] = gpctr;     /* registered: online */
#endif
            run drain(i);
            run reader(i);
            i++
        :: else -> break
        od;
        i = 1;
        do
        :: i <= NW -> run writer(i); i++
        :: else -> break
        od;
        run monitor()
    }
}
