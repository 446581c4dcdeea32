/*
 * rcu._native: the read side of rcu in C.
 *
 * Why C
 * -----
 * A read section exists to cost less than a lock. In pure Python a section
 * is a few attribute loads and stores, each a bytecode: about as much as
 * `with threading.Lock():`. Here `lock` and `unlock` are one C call each,
 * and the stores and loads that make the protocol correct are C11 atomics
 * with the fences written out, so that correctness rests on this file and
 * not on the interpreter (a free-threaded build runs it without a GIL).
 *
 * What lives here, and what does not
 * ----------------------------------
 * Only the per-thread reader record (ctr, depth, waiting, owner) and the
 * grace-period counter, with the calls that touch them on the hot path:
 * the epoch flavor's lock/unlock/__enter__/__exit__, the qsbr flavor's
 * quiescent_state/offline/online, and the driver's per-reader check
 * is_ongoing(). Everything else (registration, the driver's loop, the
 * handoff gate, the callback engine) stays in Python, in rcu/_registry.py,
 * rcu/_grace.py and rcu/_reader.py, which also hold the pure-Python
 * reference of every
 * function below. The slow paths (a flagged reader that must signal the
 * driver or step aside) call back into Python: Reader._flagged() and
 * GracePeriodState.signal().
 *
 * Memory orders (liburcu's "mb" flavor; the Python reference says where
 * each pairing lives, as ORDER comments in rcu/_flavors.py):
 *
 *   reader, outermost lock / online / quiescent_state:
 *       store ctr; FENCE(seq_cst); ... loads of shared data
 *   driver (rcu/_grace.py), a grace period:
 *       store new pointer; store gp.ctr (seq_cst); FENCE; load reader ctr
 *   Either the driver sees the reader's ctr (and waits for it), or the
 *   reader's later loads see the new pointer. (Store-buffering: without
 *   both fences each side could miss the other's store.)
 *
 *   reader, outermost unlock / offline / quiescent_state:
 *       loads of shared data; store-release ctr; FENCE(seq_cst); load waiting
 *   driver: store waiting (seq_cst); clear the wake-up; FENCE; load-acquire ctr
 *   Either the driver sees the reader gone (and, by release/acquire, every
 *   load of its section happened before), or the reader sees waiting and
 *   signals the driver: no wake-up is lost.
 *
 * Threads
 * -------
 * One writer per field: ctr, depth and stepped are written by the owner
 * thread (or, once it is dead or unregistering itself, by rcu/_registry.py),
 * waiting by the thread driving the grace period. Every call checks that
 * it runs on the handle's owner thread (a few nanoseconds) and raises
 * RcuError otherwise: a handle used from another thread could end the
 * owner's section under it. No static mutable state: the types are heap
 * types of the module, and the module declares it does not need the GIL.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <pythread.h>
#ifdef _POSIX_THREADS
#include <pthread.h>
#endif
#include <structmember.h>
#include <stdatomic.h>
#include <stdint.h>

/* Reader.waiting values, as in rcu/_reader.py. */
#define NOT_WAITING 0
#define HOLDOUT 2

/* ------------------------------------------------------------------ */
/* Errors: raised from rcu.errors (looked up on the error path only).  */

static void
raise_from_errors(const char *name, const char *message)
{
    PyObject *errors = PyImport_ImportModule("rcu.errors");
    if (errors == NULL) {
        return;
    }
    PyObject *type = PyObject_GetAttrString(errors, name);
    Py_DECREF(errors);
    if (type == NULL) {
        return;
    }
    PyErr_SetString(type, message);
    Py_DECREF(type);
}

static PyObject *
raise_unbalanced(void)
{
    raise_from_errors("ReadSectionError",
                      "unlock without a matching lock: no read section is open on this thread");
    return NULL;
}

static PyObject *
raise_unregistered(void)
{
    raise_from_errors("RcuError",
                      "this reader handle belongs to an unregistered thread: "
                      "get a new one with domain.reader()");
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Counter: the domain's grace-period counter (base of GracePeriodState). */

typedef struct {
    PyObject_HEAD
    /* Written by the grace-period driver only; 0 never occurs in a live
     * domain (it starts at 1), so a reader whose counter object reads 0
     * belongs to an unregistered thread (rcu._reader.UNREGISTERED). */
    _Atomic uint64_t ctr;
} CounterObject;

static PyObject *
counter_get_ctr(CounterObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(atomic_load(&self->ctr));
}

static int
counter_set_ctr(CounterObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete ctr");
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    /* ORDER: seq_cst, as the driver's bump must precede its loads of the
     * readers' ctr (see the module comment). */
    atomic_store(&self->ctr, (uint64_t)v);
    return 0;
}

static PyGetSetDef counter_getset[] = {
    {"ctr", (getter)counter_get_ctr, (setter)counter_set_ctr,
     "The grace-period counter (driver writes, readers copy it).", NULL},
    {NULL},
};

static void
counter_dealloc(PyObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    tp->tp_free(self);
    Py_DECREF(tp);
}

static PyType_Slot counter_slots[] = {
    {Py_tp_doc, "The grace-period counter of a domain, in C."},
    {Py_tp_getset, counter_getset},
    {Py_tp_dealloc, counter_dealloc},
    {Py_tp_new, PyType_GenericNew},
    {0, NULL},
};

static PyType_Spec counter_spec = {
    .name = "rcu._native.Counter",
    .basicsize = sizeof(CounterObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .slots = counter_slots,
};

/* ------------------------------------------------------------------ */
/* The reader record, shared by both flavors.                          */

typedef struct {
    PyObject_HEAD
    _Atomic uint64_t ctr;      /* owner writes; the driver reads */
    _Atomic Py_ssize_t depth;  /* owner writes; others read it for reports */
    _Atomic int waiting;       /* the driver writes; the owner reads */
    unsigned long owner;       /* thread ident; set once, at creation */
    CounterObject *gp;         /* strong; replaced only when the owner unregisters or died */
    PyObject *stepped;         /* owner only: the last handoff gate it stepped aside for */
    _Atomic uint64_t handoffs;   /* owner writes (in Reader._flagged); statistics read */
    _Atomic uint64_t handoff_ns; /* the same */
    PyObject *thread;          /* the owner's threading.Thread; set once */
} ReaderObject;

typedef struct {
    PyTypeObject *counter_type;
} module_state;

static struct PyModuleDef native_module;

/* The module's Counter type, found through the reader's (sub)type. */
static PyTypeObject *
counter_type_of(ReaderObject *self)
{
    PyObject *module = PyType_GetModuleByDef(Py_TYPE(self), &native_module);
    if (module == NULL) {
        return NULL;
    }
    return ((module_state *)PyModule_GetState(module))->counter_type;
}

static void raise_wrong_thread(ReaderObject *self);

/* This thread's identity as threading.get_ident() reports it (pthread_self()
 * on POSIX, called directly: it is on every read-side call). */
static inline unsigned long
current_thread_ident(void)
{
#ifdef _POSIX_THREADS
    return (unsigned long)pthread_self();
#else
    return PyThread_get_thread_ident();
#endif
}

static inline int
check_owner(ReaderObject *self)
{
    if (current_thread_ident() == self->owner) {
        return 1;
    }
    raise_wrong_thread(self);
    return 0;
}

static void
raise_wrong_thread(ReaderObject *self)
{
    PyObject *name = self->thread ? PyObject_GetAttrString(self->thread, "name") : NULL;
    PyErr_Clear();
    PyObject *text = PyUnicode_FromFormat(
        "a reader handle belongs to the thread that obtained it (%R): this is another thread; "
        "use domain.reader() or domain.read() on each thread",
        name ? name : Py_None);
    Py_XDECREF(name);
    if (text != NULL) {
        raise_from_errors("RcuError", PyUnicode_AsUTF8(text));
        Py_DECREF(text);
    }
}

/* The slow path of leaving a section while a grace period waits:
 * Reader._flagged() in Python (signal the driver, step aside on its gate). */
static PyObject *
call_flagged(ReaderObject *self)
{
    PyObject *name = PyUnicode_InternFromString("_flagged");
    if (name == NULL) {
        return NULL;
    }
    PyObject *result = PyObject_CallMethodNoArgs((PyObject *)self, name);
    Py_DECREF(name);
    return result;
}

static PyObject *
signal_driver(ReaderObject *self)
{
    return PyObject_CallMethod((PyObject *)self->gp, "signal", NULL);
}

static int
reader_init(ReaderObject *self, PyObject *args, PyObject *kwds)
{
    PyObject *gp, *thread;
    static char *kwlist[] = {"gp", "thread", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:Reader", kwlist, &gp, &thread)) {
        return -1;
    }
    if (self->gp != NULL) {
        /* A live record re-armed by another thread would end its owner's
         * section under it. */
        PyErr_SetString(PyExc_TypeError, "a reader record cannot be initialised twice");
        return -1;
    }
    PyTypeObject *counter_type = counter_type_of(self);
    if (counter_type == NULL) {
        return -1;
    }
    if (!PyObject_TypeCheck(gp, counter_type)) {
        PyErr_Format(PyExc_TypeError, "gp must be an rcu._native.Counter, not %.100s",
                     Py_TYPE(gp)->tp_name);
        return -1;
    }
    Py_XSETREF(self->gp, (CounterObject *)Py_NewRef(gp));
    Py_XSETREF(self->thread, Py_NewRef(thread));
    Py_XSETREF(self->stepped, Py_NewRef(Py_None));
    self->owner = current_thread_ident();
    atomic_store(&self->ctr, 0);
    atomic_store(&self->depth, 0);
    atomic_store(&self->waiting, NOT_WAITING);
    atomic_store(&self->handoffs, 0);
    atomic_store(&self->handoff_ns, 0);
    return 0;
}

static int
reader_traverse(ReaderObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->gp);
    Py_VISIT(self->stepped);
    Py_VISIT(self->thread);
    return 0;
}

static int
reader_clear(ReaderObject *self)
{
    Py_CLEAR(self->gp);
    Py_CLEAR(self->stepped);
    Py_CLEAR(self->thread);
    return 0;
}

static void
reader_dealloc(ReaderObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    reader_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

/* -- attributes (the interface rcu/_registry.py, rcu/_grace.py and rcu/_debug.py use) -- */

static PyObject *
reader_get_ctr(ReaderObject *self, void *Py_UNUSED(closure))
{
    /* ORDER: acquire, pairs with the owner's store-release of 0. */
    return PyLong_FromUnsignedLongLong(atomic_load_explicit(&self->ctr, memory_order_acquire));
}

static int
reader_set_ctr(ReaderObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete ctr");
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    /* From rcu/_registry.py: online at registration (under the registry lock)
     * or cleared for a thread that unregisters or died.
     * ORDER: the store, then a fence, so that it precedes the caller's later
     * load of waiting (as in unlock: no lost wake-up). */
    atomic_store(&self->ctr, (uint64_t)v);
    atomic_thread_fence(memory_order_seq_cst);
    return 0;
}

static PyObject *
reader_get_depth(ReaderObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(atomic_load_explicit(&self->depth, memory_order_relaxed));
}

static int
reader_set_depth(ReaderObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete depth");
        return -1;
    }
    Py_ssize_t v = PyLong_AsSsize_t(value);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v < 0) {
        PyErr_SetString(PyExc_ValueError, "depth must be >= 0");
        return -1;
    }
    atomic_store_explicit(&self->depth, v, memory_order_relaxed);
    return 0;
}

static PyObject *
reader_get_waiting(ReaderObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(atomic_load_explicit(&self->waiting, memory_order_relaxed));
}

static int
reader_set_waiting(ReaderObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete waiting");
        return -1;
    }
    long v = PyLong_AsLong(value);
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    if (v < 0 || v > 2) {
        PyErr_SetString(PyExc_ValueError, "waiting must be 0, 1 or 2");
        return -1;
    }
    /* ORDER: the driver stores waiting, then reads ctr (is_ongoing fences
     * before its load; the fence here keeps the pair explicit). */
    atomic_store(&self->waiting, (int)v);
    atomic_thread_fence(memory_order_seq_cst);
    return 0;
}

static PyObject *
reader_get_gp(ReaderObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->gp ? (PyObject *)self->gp : Py_None);
}

static int
reader_set_gp(ReaderObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    PyTypeObject *counter_type = counter_type_of(self);
    if (counter_type == NULL) {
        return -1;
    }
    if (value == NULL || !PyObject_TypeCheck(value, counter_type)) {
        /* GracePeriodState (the domain's) or UNREGISTERED, its subclass. */
        PyErr_SetString(PyExc_TypeError, "_gp must be an rcu._native.Counter");
        return -1;
    }
    Py_XSETREF(self->gp, (CounterObject *)Py_NewRef(value));
    return 0;
}

static PyObject *
reader_get_stepped(ReaderObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->stepped ? self->stepped : Py_None);
}

static int
reader_set_stepped(ReaderObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete stepped");
        return -1;
    }
    Py_XSETREF(self->stepped, Py_NewRef(value));
    return 0;
}

static PyObject *
reader_get_u64(ReaderObject *self, void *closure)
{
    _Atomic uint64_t *field = (_Atomic uint64_t *)((char *)self + (Py_ssize_t)closure);
    return PyLong_FromUnsignedLongLong(atomic_load_explicit(field, memory_order_relaxed));
}

static int
reader_set_u64(ReaderObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete a counter");
        return -1;
    }
    unsigned long long v = PyLong_AsUnsignedLongLong(value);
    if (v == (unsigned long long)-1 && PyErr_Occurred()) {
        return -1;
    }
    _Atomic uint64_t *field = (_Atomic uint64_t *)((char *)self + (Py_ssize_t)closure);
    atomic_store_explicit(field, (uint64_t)v, memory_order_relaxed);
    return 0;
}

static PyObject *
reader_get_thread(ReaderObject *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->thread ? self->thread : Py_None);
}

static PyGetSetDef reader_getset[] = {
    {"ctr", (getter)reader_get_ctr, (setter)reader_set_ctr,
     "0 when not reading; else the grace-period counter the owner last saw.", NULL},
    {"depth", (getter)reader_get_depth, (setter)reader_set_depth,
     "Read-section nesting depth (owner only).", NULL},
    {"waiting", (getter)reader_get_waiting, (setter)reader_set_waiting,
     "What the grace-period driver asks of this reader (driver only).", NULL},
    {"_gp", (getter)reader_get_gp, (setter)reader_set_gp,
     "The domain's grace-period state.", NULL},
    {"stepped", (getter)reader_get_stepped, (setter)reader_set_stepped,
     "The handoff gate this reader last stepped aside for (owner only).", NULL},
    {"thread", (getter)reader_get_thread, NULL, "The owner thread.", NULL},
    {"handoffs", (getter)reader_get_u64, (setter)reader_set_u64,
     "How often this reader stepped aside for a grace period (owner only).",
     (void *)offsetof(ReaderObject, handoffs)},
    {"handoff_ns", (getter)reader_get_u64, (setter)reader_set_u64,
     "How long it stepped aside in all, in nanoseconds (owner only).",
     (void *)offsetof(ReaderObject, handoff_ns)},
    {NULL},
};

static PyObject *
reader_is_ongoing(ReaderObject *self, PyObject *arg)
{
    unsigned long long gp_ctr = PyLong_AsUnsignedLongLong(arg);
    if (gp_ctr == (unsigned long long)-1 && PyErr_Occurred()) {
        return NULL;
    }
    /* ORDER: the driver's stores (the bump, waiting) happen before this
     * load of ctr; acquire pairs with the owner's store-release of 0. */
    atomic_thread_fence(memory_order_seq_cst);
    uint64_t ctr = atomic_load_explicit(&self->ctr, memory_order_acquire);
    return PyBool_FromLong(ctr != 0 && ctr != (uint64_t)gp_ctr);
}

/* -- the epoch flavor -------------------------------------------------- */

static inline int
epoch_enter(ReaderObject *self)
{
    if (!check_owner(self)) {
        return -1;
    }
    Py_ssize_t depth = atomic_load_explicit(&self->depth, memory_order_relaxed);
    if (depth == 0) {
        uint64_t c = atomic_load_explicit(&self->gp->ctr, memory_order_relaxed);
        if (c == 0) {
            raise_unregistered();
            return -1;
        }
        atomic_store_explicit(&self->ctr, c, memory_order_relaxed);
        /* ORDER: the store to ctr happens before every load of shared data
         * in the section (pairs with the driver's bump; fence; load ctr). */
        atomic_thread_fence(memory_order_seq_cst);
    }
    atomic_store_explicit(&self->depth, depth + 1, memory_order_relaxed);
    return 0;
}

static inline PyObject *
epoch_leave(ReaderObject *self)
{
    if (!check_owner(self)) {
        return NULL;
    }
    Py_ssize_t depth = atomic_load_explicit(&self->depth, memory_order_relaxed) - 1;
    if (depth > 0) {
        atomic_store_explicit(&self->depth, depth, memory_order_relaxed);
        Py_RETURN_NONE;
    }
    if (depth < 0) {
        return raise_unbalanced();
    }
    /* ORDER: release: every load of the section happens before ctr reads 0. */
    atomic_store_explicit(&self->ctr, 0, memory_order_release);
    atomic_store_explicit(&self->depth, 0, memory_order_relaxed);
    /* ORDER: the store of 0 happens before the load of waiting (pairs with
     * the driver's store of waiting; fence; load ctr): no lost wake-up. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&self->waiting, memory_order_relaxed) != NOT_WAITING) {
        return call_flagged(self);
    }
    Py_RETURN_NONE;
}

static PyObject *
epoch_relock(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    /* unlock(); lock() in one call: a quiescent point of a long section. */
    if (!check_owner(self)) {
        return NULL;
    }
    Py_ssize_t depth = atomic_load_explicit(&self->depth, memory_order_relaxed);
    if (depth != 1) {
        if (depth < 1) {
            return raise_unbalanced();
        }
        Py_RETURN_NONE; /* nested: unlock(); lock() changes nothing */
    }
    uint64_t c = atomic_load_explicit(&self->gp->ctr, memory_order_relaxed);
    if (c == 0) {
        return raise_unregistered();
    }
    /* Storing the current counter over the old one is leaving and entering
     * at once: a driver sees either the old value (and waits, as for the old
     * section) or the current one (which started after its bump).
     * ORDER: release: the old section's loads happen before the store. */
    atomic_store_explicit(&self->ctr, c, memory_order_release);
    /* ORDER: the store happens before the load of waiting (no lost wake-up)
     * and before every load of the new section. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&self->waiting, memory_order_relaxed) != NOT_WAITING) {
        return call_flagged(self);
    }
    Py_RETURN_NONE;
}

static PyObject *
epoch_lock(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (epoch_enter(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
epoch_unlock(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    return epoch_leave(self);
}

static PyObject *
epoch_context_enter(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (epoch_enter(self) < 0) {
        return NULL;
    }
    return Py_NewRef(self);
}

static PyObject *
epoch_context_exit(ReaderObject *self, PyObject *const *Py_UNUSED(args),
                   Py_ssize_t Py_UNUSED(nargs))
{
    return epoch_leave(self);
}

static PyMethodDef epoch_methods[] = {
    {"lock", (PyCFunction)epoch_lock, METH_NOARGS, "Enter a read section (nestable)."},
    {"unlock", (PyCFunction)epoch_unlock, METH_NOARGS,
     "Leave the innermost read section; ReadSectionError if none is open."},
    {"relock", (PyCFunction)epoch_relock, METH_NOARGS,
     "unlock(); lock() in one call: a quiescent point inside a long section."},
    {"__enter__", (PyCFunction)epoch_context_enter, METH_NOARGS, "Enter a read section."},
    {"__exit__", (PyCFunction)(void (*)(void))epoch_context_exit, METH_FASTCALL,
     "Leave the read section."},
    {"is_ongoing", (PyCFunction)reader_is_ongoing, METH_O,
     "True if the grace period gp_ctr must still wait for this reader."},
    {NULL},
};

/* -- the qsbr flavor --------------------------------------------------- */

static PyObject *
qsbr_lock(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!check_owner(self)) {
        return NULL;
    }
    atomic_fetch_add_explicit(&self->depth, 1, memory_order_relaxed);
    Py_RETURN_NONE;
}

static PyObject *
qsbr_unlock(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!check_owner(self)) {
        return NULL;
    }
    Py_ssize_t depth = atomic_load_explicit(&self->depth, memory_order_relaxed) - 1;
    if (depth < 0) {
        return raise_unbalanced();
    }
    atomic_store_explicit(&self->depth, depth, memory_order_relaxed);
    Py_RETURN_NONE;
}

static PyObject *
qsbr_relock(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!check_owner(self)) {
        return NULL;
    }
    if (atomic_load_explicit(&self->depth, memory_order_relaxed) < 1) {
        return raise_unbalanced();
    }
    Py_RETURN_NONE;
}

static PyObject *
qsbr_context_enter(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!check_owner(self)) {
        return NULL;
    }
    atomic_fetch_add_explicit(&self->depth, 1, memory_order_relaxed);
    return Py_NewRef(self);
}

static PyObject *
qsbr_context_exit(ReaderObject *self, PyObject *const *Py_UNUSED(args),
                  Py_ssize_t Py_UNUSED(nargs))
{
    return qsbr_unlock(self, NULL);
}

static int
qsbr_check_outside(ReaderObject *self, const char *what)
{
    if (!check_owner(self)) {
        return -1;
    }
    if (atomic_load_explicit(&self->depth, memory_order_relaxed) != 0) {
        char message[80];
        PyOS_snprintf(message, sizeof(message), "%s inside a read section", what);
        raise_from_errors("ReadSectionError", message);
        return -1;
    }
    return 0;
}

static PyObject *
qsbr_quiescent_state(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (qsbr_check_outside(self, "quiescent_state()") < 0) {
        return NULL;
    }
    if (atomic_load_explicit(&self->ctr, memory_order_relaxed) == 0) {
        Py_RETURN_NONE; /* offline threads stay offline */
    }
    uint64_t c = atomic_load_explicit(&self->gp->ctr, memory_order_relaxed);
    if (c == 0) {
        return raise_unregistered();
    }
    /* ORDER: release: the loads before this quiescent state happen before
     * the driver sees the new counter value. */
    atomic_store_explicit(&self->ctr, c, memory_order_release);
    /* ORDER: the store happens before the load of waiting (no lost wake-up)
     * and before every later load of shared data. */
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&self->waiting, memory_order_relaxed) != NOT_WAITING) {
        return call_flagged(self);
    }
    Py_RETURN_NONE;
}

static int
qsbr_go_offline(ReaderObject *self)
{
    /* ORDER: release, then the fence before the load of waiting, as in unlock. */
    atomic_store_explicit(&self->ctr, 0, memory_order_release);
    atomic_thread_fence(memory_order_seq_cst);
    if (atomic_load_explicit(&self->waiting, memory_order_relaxed) == HOLDOUT) {
        /* No handoff: the thread goes offline to do something else. */
        PyObject *result = signal_driver(self);
        if (result == NULL) {
            return -1;
        }
        Py_DECREF(result);
    }
    return 0;
}

static PyObject *
qsbr_offline(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (qsbr_check_outside(self, "offline()") < 0 || qsbr_go_offline(self) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *
qsbr_online(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!check_owner(self)) {
        return NULL;
    }
    if (atomic_load_explicit(&self->ctr, memory_order_relaxed) != 0) {
        Py_RETURN_NONE; /* online already: not a quiescent state */
    }
    uint64_t c = atomic_load_explicit(&self->gp->ctr, memory_order_relaxed);
    if (c == 0) {
        return raise_unregistered();
    }
    atomic_store_explicit(&self->ctr, c, memory_order_relaxed);
    /* ORDER: this store happens before every later load of shared data. */
    atomic_thread_fence(memory_order_seq_cst);
    Py_RETURN_NONE;
}

static PyObject *
qsbr_pause(ReaderObject *self, PyObject *Py_UNUSED(ignored))
{
    /* Before blocking in a wait: offline if online; True if online() must follow. */
    if (!check_owner(self)) {
        return NULL;
    }
    if (atomic_load_explicit(&self->ctr, memory_order_relaxed) == 0) {
        Py_RETURN_FALSE;
    }
    if (qsbr_check_outside(self, "offline()") < 0 || qsbr_go_offline(self) < 0) {
        return NULL;
    }
    Py_RETURN_TRUE;
}

static PyMethodDef qsbr_methods[] = {
    {"lock", (PyCFunction)qsbr_lock, METH_NOARGS, "Enter a read section (nestable)."},
    {"unlock", (PyCFunction)qsbr_unlock, METH_NOARGS,
     "Leave the innermost read section; ReadSectionError if none is open."},
    {"relock", (PyCFunction)qsbr_relock, METH_NOARGS,
     "unlock(); lock() in one call (qsbr sections mark nothing)."},
    {"__enter__", (PyCFunction)qsbr_context_enter, METH_NOARGS, "Enter a read section."},
    {"__exit__", (PyCFunction)(void (*)(void))qsbr_context_exit, METH_FASTCALL,
     "Leave the read section."},
    {"quiescent_state", (PyCFunction)qsbr_quiescent_state, METH_NOARGS,
     "Report that this thread holds no reference obtained before this call."},
    {"offline", (PyCFunction)qsbr_offline, METH_NOARGS,
     "Stop holding up grace periods until online()."},
    {"online", (PyCFunction)qsbr_online, METH_NOARGS,
     "Hold up grace periods again (a no-op on an online thread)."},
    {"_pause", (PyCFunction)qsbr_pause, METH_NOARGS,
     "Go offline before a wait; True if online() must follow."},
    {"is_ongoing", (PyCFunction)reader_is_ongoing, METH_O,
     "True if the grace period gp_ctr must still wait for this reader."},
    {NULL},
};

static PyType_Slot epoch_slots[] = {
    {Py_tp_doc, "The epoch flavor's reader record, in C."},
    {Py_tp_init, reader_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, reader_dealloc},
    {Py_tp_traverse, reader_traverse},
    {Py_tp_clear, reader_clear},
    {Py_tp_getset, reader_getset},
    {Py_tp_methods, epoch_methods},
    {0, NULL},
};

static PyType_Slot qsbr_slots[] = {
    {Py_tp_doc, "The qsbr flavor's reader record, in C."},
    {Py_tp_init, reader_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, reader_dealloc},
    {Py_tp_traverse, reader_traverse},
    {Py_tp_clear, reader_clear},
    {Py_tp_getset, reader_getset},
    {Py_tp_methods, qsbr_methods},
    {0, NULL},
};

static PyType_Spec epoch_spec = {
    .name = "rcu._native.EpochReader",
    .basicsize = sizeof(ReaderObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = epoch_slots,
};

static PyType_Spec qsbr_spec = {
    .name = "rcu._native.QsbrReader",
    .basicsize = sizeof(ReaderObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = qsbr_slots,
};

/* ------------------------------------------------------------------ */
/* ReaderLookup: Domain.read() and Domain.reader() in C.                */

/* This thread's reader of one domain, found in the thread state's own dict
 * under the domain's key (threading.local costs a generic attribute lookup
 * on top). Only the owner thread writes its thread state's dict, so the
 * borrowed reference is safe without a lock. A thread without an entry is
 * registered by calling the fallback (Domain.register_thread). */
typedef struct {
    PyObject_HEAD
    PyObject *key;
    PyObject *fallback;
    vectorcallfunc vectorcall;
} LookupObject;

static PyObject *
lookup_vectorcall(PyObject *callable, PyObject *const *Py_UNUSED(args), size_t nargsf,
                  PyObject *kwnames)
{
    LookupObject *self = (LookupObject *)callable;
    if (PyVectorcall_NARGS(nargsf) != 0 || (kwnames != NULL && PyTuple_GET_SIZE(kwnames))) {
        PyErr_SetString(PyExc_TypeError, "read() takes no arguments");
        return NULL;
    }
    PyObject *dict = PyThreadState_GetDict(); /* borrowed */
    if (dict != NULL) {
        PyObject *reader = PyDict_GetItemWithError(dict, self->key); /* borrowed */
        if (reader != NULL) {
            return Py_NewRef(reader);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    return PyObject_CallNoArgs(self->fallback);
}

static PyObject *
lookup_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    PyObject *key, *fallback;
    static char *kwlist[] = {"key", "fallback", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "OO:ReaderLookup", kwlist, &key, &fallback)) {
        return NULL;
    }
    if (!PyCallable_Check(fallback)) {
        PyErr_SetString(PyExc_TypeError, "fallback must be callable");
        return NULL;
    }
    LookupObject *self = (LookupObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->key = Py_NewRef(key);
    self->fallback = Py_NewRef(fallback);
    self->vectorcall = lookup_vectorcall;
    return (PyObject *)self;
}

static int
lookup_traverse(LookupObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->key);
    Py_VISIT(self->fallback);
    return 0;
}

static int
lookup_clear(LookupObject *self)
{
    Py_CLEAR(self->key);
    Py_CLEAR(self->fallback);
    return 0;
}

static void
lookup_dealloc(LookupObject *self)
{
    PyTypeObject *tp = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    lookup_clear(self);
    tp->tp_free((PyObject *)self);
    Py_DECREF(tp);
}

static PyMemberDef lookup_members[] = {
    {"__vectorcalloffset__", T_PYSSIZET, offsetof(LookupObject, vectorcall), READONLY, NULL},
    {NULL},
};

static PyType_Slot lookup_slots[] = {
    {Py_tp_doc, "This thread's reader of a domain (registers the thread on first use)."},
    {Py_tp_new, lookup_new},
    {Py_tp_call, PyVectorcall_Call},
    {Py_tp_dealloc, lookup_dealloc},
    {Py_tp_traverse, lookup_traverse},
    {Py_tp_clear, lookup_clear},
    {Py_tp_members, lookup_members},
    {0, NULL},
};

static PyType_Spec lookup_spec = {
    .name = "rcu._native.ReaderLookup",
    .basicsize = sizeof(LookupObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL,
    .slots = lookup_slots,
};

static PyObject *
native_set_current(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    /* set_current(key, reader_or_None): this thread's entry for ReaderLookup. */
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "set_current(key, reader) takes two arguments");
        return NULL;
    }
    PyObject *dict = PyThreadState_GetDict();
    if (dict == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "this thread has no thread-state dict");
        return NULL;
    }
    if (args[1] == Py_None) {
        if (PyDict_DelItem(dict, args[0]) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
                return NULL;
            }
            PyErr_Clear();
        }
    }
    else if (PyDict_SetItem(dict, args[0], args[1]) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyMethodDef native_methods[] = {
    {"set_current", (PyCFunction)(void (*)(void))native_set_current, METH_FASTCALL,
     "Record (or, with None, forget) this thread's reader under key."},
    {NULL},
};

/* ------------------------------------------------------------------ */
/* The module.                                                          */

static int
add_type(PyObject *module, PyType_Spec *spec, PyTypeObject **out)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, NULL);
    if (type == NULL) {
        return -1;
    }
    const char *dot = strrchr(spec->name, '.');
    if (PyModule_AddObjectRef(module, dot + 1, type) < 0) {
        Py_DECREF(type);
        return -1;
    }
    if (out != NULL) {
        *out = (PyTypeObject *)type; /* the module state keeps this reference */
    }
    else {
        Py_DECREF(type);
    }
    return 0;
}

static int
native_exec(PyObject *module)
{
    module_state *state = PyModule_GetState(module);
    if (add_type(module, &counter_spec, &state->counter_type) < 0 ||
        add_type(module, &epoch_spec, NULL) < 0 || add_type(module, &qsbr_spec, NULL) < 0 ||
        add_type(module, &lookup_spec, NULL) < 0) {
        return -1;
    }
    return 0;
}

static int
native_traverse(PyObject *module, visitproc visit, void *arg)
{
    module_state *state = PyModule_GetState(module);
    Py_VISIT(state->counter_type);
    return 0;
}

static int
native_clear(PyObject *module)
{
    module_state *state = PyModule_GetState(module);
    Py_CLEAR(state->counter_type);
    return 0;
}

static PyModuleDef_Slot native_slots[] = {
    {Py_mod_exec, native_exec},
#ifdef Py_mod_multiple_interpreters
    {Py_mod_multiple_interpreters, Py_MOD_PER_INTERPRETER_GIL_SUPPORTED},
#endif
#ifdef Py_mod_gil
    {Py_mod_gil, Py_MOD_GIL_NOT_USED},
#endif
    {0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "rcu._native",
    .m_doc = "The read side of rcu in C (see rcu/_native.c).",
    .m_size = sizeof(module_state),
    .m_slots = native_slots,
    .m_methods = native_methods,
    .m_traverse = native_traverse,
    .m_clear = native_clear,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    return PyModuleDef_Init(&native_module);
}
