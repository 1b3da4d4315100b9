/*
 * kmmlib.trace._ftrace: the fast path of kmmlib/trace/parse.py's iter_records(), in C.
 *
 * Optional, as the standard library's _json is for json: parse.py is the reference, and
 * works alone (pure Python) when this module could not be built. scan() reads the lines
 * whose layout is the one Linux 6.18 prints for the ten kmem events,
 *
 *     TASK-PID [CPU] FLAGS SECONDS.MICROS: EVENT: key=value ...
 *
 * and builds the very tuples parse.py's fast path would. It stops at the first line it
 * cannot read that way (a comment, another kernel's fields, a non-ASCII task name, ...)
 * and hands it back: parse.py reads that one line, by place or by name, and calls scan()
 * again after it. So for every line scan() accepts, it must give what parse.py's fast
 * path gives, and it may refuse a line parse.py would accept (then parse.py reads it).
 * Its checks are the Python fast path's, or stricter:
 *
 *   - tokens are split at the ASCII characters Python's str.split() splits at;
 *   - only ASCII lines (a str whose characters are all below 128) are read here;
 *   - numbers are plain digits (Python's int() would also take "+3" or "1_0"), at most
 *     18 of them; a pfn is 0x and 1 to 15 hex digits, or decimal digits.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_TOKENS 14           /* one more than the longest layout (kmem_cache_alloc) */

/* The record codes of parse.py (PAGE_ALLOC = 0 ... CACHE_FREE = 9). */
enum { PAGE_ALLOC, PAGE_FREE, FREE_BATCHED, ZONE_LOCKED, PCPU_DRAIN, EXTFRAG,
       KMALLOC, KFREE, CACHE_ALLOC, CACHE_FREE };

typedef struct { const char *s; Py_ssize_t n; } tok;

/* Python's str.split() separators among ASCII: \t \n \v \f \r, \x1c-\x1f and space. */
static int is_space(unsigned char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r') || (c >= 0x1c && c <= 0x1f);
}

static int tok_is(tok t, const char *lit)
{
    Py_ssize_t n = (Py_ssize_t)strlen(lit);
    return t.n == n && memcmp(t.s, lit, n) == 0;
}

/* Strip "key=" (the token must start with it): the value, or n = -1. */
static tok after_key(tok t, const char *key)
{
    Py_ssize_t n = (Py_ssize_t)strlen(key);
    tok v = { NULL, -1 };
    if (t.n >= n && memcmp(t.s, key, n) == 0) {
        v.s = t.s + n;
        v.n = t.n - n;
    }
    return v;
}

/* Plain decimal, an optional leading '-': 0 and *out, or -1. */
static int dec(tok v, long long *out)
{
    Py_ssize_t i = 0;
    int neg = 0;
    long long x = 0;
    if (v.n > 0 && v.s[0] == '-') {
        neg = 1;
        i = 1;
    }
    if (v.n - i < 1 || v.n - i > 18)
        return -1;
    for (; i < v.n; i++) {
        if (v.s[i] < '0' || v.s[i] > '9')
            return -1;
        x = x * 10 + (v.s[i] - '0');
    }
    *out = neg ? -x : x;
    return 0;
}

/* parse.py's _pfn(): 0x and hex digits, or decimal. */
static int pfn_value(tok v, long long *out)
{
    long long x = 0;
    if (v.n >= 2 && v.s[0] == '0' && v.s[1] == 'x') {
        if (v.n < 3 || v.n > 17)
            return -1;
        for (Py_ssize_t i = 2; i < v.n; i++) {
            char c = v.s[i];
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
                    c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0)
                return -1;
            x = x * 16 + d;
        }
        *out = x;
        return 0;
    }
    if (v.n > 0 && v.s[0] == '-')
        return -1;
    return dec(v, out);
}

/* One str object per distinct text for the fields that repeat (task, gfp_flags, name,
 * call_site): an open-addressing table keyed by the bytes, so that a text seen before costs
 * a hash and a memcmp, not a new object. It only remembers: when it is half full it starts
 * afresh (a trace has a few thousand such strings; a pfn or a pointer is never kept). */
#define TABLE_SIZE (1 << 15)
static struct { PyObject *str; Py_ssize_t n; unsigned long long h; } table[TABLE_SIZE];
static Py_ssize_t table_used;

static void table_clear(void)
{
    for (Py_ssize_t i = 0; i < TABLE_SIZE; i++)
        Py_CLEAR(table[i].str);
    table_used = 0;
}

static PyObject *shared_str(tok v)
{
    unsigned long long h = 14695981039346656037ULL;      /* FNV-1a */
    Py_ssize_t i;
    PyObject *s;
    for (i = 0; i < v.n; i++)
        h = (h ^ (unsigned char)v.s[i]) * 1099511628211ULL;
    for (i = (Py_ssize_t)(h & (TABLE_SIZE - 1)); table[i].str != NULL;
         i = (i + 1) & (TABLE_SIZE - 1)) {
        if (table[i].h == h && table[i].n == v.n &&
                memcmp(PyUnicode_DATA(table[i].str), v.s, v.n) == 0) {
            Py_INCREF(table[i].str);
            return table[i].str;
        }
    }
    s = PyUnicode_FromStringAndSize(v.s, v.n);
    if (s == NULL)
        return NULL;
    if (table_used >= TABLE_SIZE / 2) {
        table_clear();
        i = (Py_ssize_t)(h & (TABLE_SIZE - 1));
    }
    Py_INCREF(s);
    table[i].str = s;
    table[i].n = v.n;
    table[i].h = h;
    table_used++;
    return s;
}

/* The last timestamp read: a burst of events shares one (as parse.py's ts_token). */
static char last_ts_text[40];
static Py_ssize_t last_ts_len = -1;
static PyObject *last_ts;

/* "SECONDS[.MICROS]:" as parse.py checks it: digits, at most one dot, not at either end;
 * its value as Python's float() gives it (correctly rounded). */
static PyObject *timestamp(tok t)
{
    static const double pow10[] = {1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10,
                                   1e11, 1e12, 1e13, 1e14, 1e15};
    char buf[sizeof last_ts_text];
    Py_ssize_t n = t.n - 1, dots = 0, frac = 0, digits = 0;
    unsigned long long whole = 0;
    double x;
    if (t.n < 2 || t.s[n] != ':' || n >= (Py_ssize_t)sizeof buf)
        return NULL;
    if (n == last_ts_len && memcmp(t.s, last_ts_text, n) == 0) {
        Py_INCREF(last_ts);
        return last_ts;
    }
    if (t.s[0] == '.' || t.s[n - 1] == '.')
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (t.s[i] == '.') {
            dots++;
        } else if (t.s[i] < '0' || t.s[i] > '9') {
            return NULL;
        } else {
            whole = whole * 10 + (unsigned long long)(t.s[i] - '0');
            digits++;
            frac += dots;
        }
    }
    if (dots > 1)
        return NULL;
    if (digits <= 15) {
        /* Clinger's fast path: the digits as an integer below 2^53 and 10^frac are both
         * exact doubles, so IEEE division rounds their quotient correctly: float()'s value. */
        x = (double)whole / pow10[frac];
    } else {
        memcpy(buf, t.s, n);
        buf[n] = '\0';
        x = PyOS_string_to_double(buf, NULL, NULL);
        if (x == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            return NULL;
        }
    }
    Py_XDECREF(last_ts);
    last_ts = PyFloat_FromDouble(x);
    if (last_ts == NULL) {
        PyErr_Clear();
        last_ts_len = -1;
        return NULL;
    }
    memcpy(last_ts_text, t.s, n);
    last_ts_len = n;
    Py_INCREF(last_ts);
    return last_ts;
}

static int event_code(tok t)
{
    static const struct { const char *name; int code; } events[] = {
        {"mm_page_alloc:", PAGE_ALLOC}, {"kmem_cache_alloc:", CACHE_ALLOC},
        {"mm_page_alloc_zone_locked:", ZONE_LOCKED}, {"mm_page_free:", PAGE_FREE},
        {"kmem_cache_free:", CACHE_FREE}, {"mm_page_free_batched:", FREE_BATCHED},
        {"kfree:", KFREE}, {"mm_page_pcpu_drain:", PCPU_DRAIN}, {"kmalloc:", KMALLOC},
    };
    for (size_t i = 0; i < sizeof events / sizeof events[0]; i++)
        if (tok_is(t, events[i].name))
            return events[i].code;
    return -1;                      /* mm_page_alloc_extfrag and the rest: parse.py's */
}

/* Build the tuple: code, ts, cpu, task, then each field from its token, by kind: 'i' an
 * int, 'p' a pfn, 's' a shared str, 'r' a str of its own, 'z' the pfn -1 of a NULL page
 * (the token is not read). NULL if a field does not convert. */
typedef struct { char kind; int idx; const char *key; } field;

static PyObject *record(int code, PyObject *ts, long long cpu, PyObject *task,
                        const tok *t, const field *f, int nf)
{
    PyObject *rec = PyTuple_New(4 + nf), *v;
    long long x;
    if (rec == NULL)
        return NULL;
    PyTuple_SET_ITEM(rec, 0, PyLong_FromLong(code));     /* 0..9: a cached small int */
    Py_INCREF(ts);
    PyTuple_SET_ITEM(rec, 1, ts);
    if ((v = PyLong_FromLongLong(cpu)) == NULL) {
        Py_DECREF(rec);
        return NULL;
    }
    PyTuple_SET_ITEM(rec, 2, v);
    Py_INCREF(task);
    PyTuple_SET_ITEM(rec, 3, task);
    for (int i = 0; i < nf; i++) {
        tok val = after_key(t[f[i].idx], f[i].key);
        v = NULL;
        if (val.n >= 0) {
            switch (f[i].kind) {
            case 'i':
                if (dec(val, &x) == 0)
                    v = PyLong_FromLongLong(x);
                break;
            case 'p':
                if (pfn_value(val, &x) == 0)
                    v = PyLong_FromLongLong(x);
                break;
            case 'z':
                v = PyLong_FromLong(-1);
                break;
            case 's':
                v = shared_str(val);
                break;
            default:
                v = PyUnicode_FromStringAndSize(val.s, val.n);
            }
        }
        if (v == NULL) {
            Py_DECREF(rec);
            return NULL;
        }
        PyTuple_SET_ITEM(rec, 4 + i, v);
    }
    return rec;
}

/* The fields after (code, ts, cpu, task), in RECORD_FIELDS order, for 6.18's layouts. */
static const field F_ALLOC[] = {{'p', 6, "pfn="}, {'i', 7, "order="},
    {'i', 8, "migratetype="}, {'s', 9, "gfp_flags="}};
/* A failed allocation prints page=0000000000000000 (or (null)): pfn -1, pfn= unread. */
static const field F_ALLOC_NULL[] = {{'z', 6, ""}, {'i', 7, "order="},
    {'i', 8, "migratetype="}, {'s', 9, "gfp_flags="}};
static const field F_CACHE_ALLOC[] = {{'r', 6, "ptr="}, {'i', 8, "bytes_req="},
    {'i', 9, "bytes_alloc="}, {'s', 10, "gfp_flags="}, {'s', 7, "name="},
    {'s', 5, "call_site="}};
static const field F_LOCKED[] = {{'p', 6, "pfn="}, {'i', 7, "order="},
    {'i', 8, "migratetype="}, {'i', 9, "percpu_refill="}};
static const field F_FREE[] = {{'p', 6, "pfn="}, {'i', 7, "order="}};
static const field F_CACHE_FREE[] = {{'r', 6, "ptr="}, {'s', 7, "name="},
    {'s', 5, "call_site="}};
static const field F_BATCHED[] = {{'p', 6, "pfn="}};
static const field F_KFREE[] = {{'r', 6, "ptr="}, {'s', 5, "call_site="}};
static const field F_DRAIN[] = {{'p', 6, "pfn="}, {'i', 7, "order="},
    {'i', 8, "migratetype="}};
static const field F_KMALLOC[] = {{'r', 6, "ptr="}, {'i', 7, "bytes_req="},
    {'i', 8, "bytes_alloc="}, {'s', 9, "gfp_flags="}, {'s', 5, "call_site="}};

#define FIELDS(f) f, (int)(sizeof f / sizeof f[0])

/* One line: its record, or NULL when this is not the fast path's line. */
static PyObject *read_line(PyObject *line, int *code_out)
{
    tok t[MAX_TOKENS];
    int n = 0, code;
    Py_ssize_t len, i = 0, dash;
    const char *s;
    long long cpu, pid;
    PyObject *ts, *task, *rec = NULL;

    if (!PyUnicode_Check(line) || !PyUnicode_IS_ASCII(line))
        return NULL;
    s = (const char *)PyUnicode_DATA(line);
    len = PyUnicode_GET_LENGTH(line);
    while (i < len) {
        while (i < len && is_space((unsigned char)s[i]))
            i++;
        if (i == len)
            break;
        if (n == MAX_TOKENS)
            return NULL;
        t[n].s = s + i;
        while (i < len && !is_space((unsigned char)s[i]))
            i++;
        t[n].n = s + i - t[n].s;
        n++;
    }
    if (n < 7 || (code = event_code(t[4])) < 0)
        return NULL;
    /* "[CPU]" */
    if (t[1].n < 3 || t[1].s[0] != '[' || t[1].s[t[1].n - 1] != ']')
        return NULL;
    if (dec((tok){t[1].s + 1, t[1].n - 2}, &cpu) != 0 || t[1].s[1] == '-')
        return NULL;
    /* "TASK-PID": what follows the last dash is the pid. */
    for (dash = t[0].n - 1; dash >= 0 && t[0].s[dash] != '-'; dash--)
        ;
    if (dash < 0 || dec((tok){t[0].s + dash + 1, t[0].n - dash - 1}, &pid) != 0 ||
            t[0].s[dash + 1] == '-')
        return NULL;
    if ((ts = timestamp(t[3])) == NULL)
        return NULL;
    task = shared_str(t[0]);
    if (task == NULL) {
        Py_DECREF(ts);
        PyErr_Clear();              /* out of memory: parse.py reads the line */
        return NULL;
    }
    switch (code) {
    case PAGE_ALLOC:
        if (n != 10)
            break;
        if (tok_is(t[5], "page=0000000000000000") || tok_is(t[5], "page=(null)"))
            rec = record(code, ts, cpu, task, t, FIELDS(F_ALLOC_NULL));
        else
            rec = record(code, ts, cpu, task, t, FIELDS(F_ALLOC));
        break;
    case CACHE_ALLOC:
        if (n == 13 && after_key(t[6], "ptr=").n >= 0 && after_key(t[11], "node=").n >= 0 &&
                after_key(t[12], "accounted=").n >= 0)
            rec = record(code, ts, cpu, task, t, FIELDS(F_CACHE_ALLOC));
        break;
    case ZONE_LOCKED:
        if (n == 10)
            rec = record(code, ts, cpu, task, t, FIELDS(F_LOCKED));
        break;
    case PAGE_FREE:
        if (n == 8)
            rec = record(code, ts, cpu, task, t, FIELDS(F_FREE));
        break;
    case CACHE_FREE:
        if (n == 8)
            rec = record(code, ts, cpu, task, t, FIELDS(F_CACHE_FREE));
        break;
    case FREE_BATCHED:
        if (n == 8)
            rec = record(code, ts, cpu, task, t, FIELDS(F_BATCHED));
        break;
    case KFREE:
        if (n == 7)
            rec = record(code, ts, cpu, task, t, FIELDS(F_KFREE));
        break;
    case PCPU_DRAIN:
        if (n == 9)
            rec = record(code, ts, cpu, task, t, FIELDS(F_DRAIN));
        break;
    case KMALLOC:
        if (n == 12 && after_key(t[10], "node=").n >= 0 &&
                after_key(t[11], "accounted=").n >= 0)
            rec = record(code, ts, cpu, task, t, FIELDS(F_KMALLOC));
        break;
    }
    Py_DECREF(ts);
    Py_DECREF(task);
    if (rec == NULL && PyErr_Occurred())
        PyErr_Clear();              /* out of memory on one line: parse.py reads it */
    *code_out = code;
    return rec;
}

PyDoc_STRVAR(scan_doc,
"scan(lines, start, counts) -> (records, stop)\n\n"
"Read lines[start:] for as long as each line is a kmem event in Linux 6.18's layout:\n"
"records holds one tuple per line read, as parse.py's fast path builds it, and\n"
"lines[stop] (when stop < len(lines)) is the first line left to parse.py.\n"
"counts[code] (a list of ten ints) grows by the records of each code.");

static PyObject *scan(PyObject *self, PyObject *args)
{
    PyObject *lines, *counts, *records, *rec, *sums[CACHE_FREE + 1] = {NULL};
    Py_ssize_t start, i, by_code[CACHE_FREE + 1] = {0};
    int c, bad = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!nO!:scan", &PyList_Type, &lines, &start, &PyList_Type,
                          &counts))
        return NULL;
    if (start < 0 || start > PyList_GET_SIZE(lines)) {
        PyErr_SetString(PyExc_IndexError, "scan: start outside the list of lines");
        return NULL;
    }
    if (PyList_GET_SIZE(counts) != CACHE_FREE + 1) {
        PyErr_SetString(PyExc_ValueError, "scan: counts must be a list of ten ints");
        return NULL;
    }
    for (c = 0; c <= CACHE_FREE; c++)
        if (!PyLong_CheckExact(PyList_GET_ITEM(counts, c))) {
            PyErr_SetString(PyExc_TypeError, "scan: counts must be a list of ten ints");
            return NULL;
        }
    records = PyList_New(0);
    if (records == NULL)
        return NULL;
    /* The garbage collector may run (and a finalizer change the list) whenever an object
     * is made: hold each line, and read the list's size afresh. */
    for (i = start; i < PyList_GET_SIZE(lines); i++) {
        int code;
        PyObject *line = PyList_GET_ITEM(lines, i);
        Py_INCREF(line);
        rec = read_line(line, &code);
        Py_DECREF(line);
        if (rec == NULL)
            break;
        if (PyList_Append(records, rec) < 0) {
            Py_DECREF(rec);
            Py_DECREF(records);
            return NULL;
        }
        by_code[code]++;
        Py_DECREF(rec);
    }
    /* The counts: every sum first (exact ints: no Python code runs), then all stored. */
    bad = PyList_GET_SIZE(counts) != CACHE_FREE + 1;
    for (c = 0; c <= CACHE_FREE && !bad; c++) {
        PyObject *old, *add;
        if (!by_code[c])
            continue;
        old = PyList_GET_ITEM(counts, c);
        if (!PyLong_CheckExact(old) || (add = PyLong_FromSsize_t(by_code[c])) == NULL) {
            bad = 1;
            break;
        }
        sums[c] = PyNumber_Add(old, add);
        Py_DECREF(add);
        bad = sums[c] == NULL;
    }
    if (bad) {
        for (c = 0; c <= CACHE_FREE; c++)
            Py_XDECREF(sums[c]);
        Py_DECREF(records);
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "scan: counts must be a list of ten ints");
        return NULL;
    }
    for (c = 0; c <= CACHE_FREE; c++)
        if (sums[c] != NULL)
            PyList_SetItem(counts, c, sums[c]);      /* steals; an int's dealloc runs no code */
    return Py_BuildValue("(Nn)", records, i);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, scan_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_ftrace",
    "The fast path of kmmlib.trace.parse.iter_records() in C (optional: see parse.py).",
    -1, methods, NULL, NULL, NULL, NULL,
};

/* parse.py's FTRACE_ABI: what scan() takes and gives. Change both together. */
#define FTRACE_ABI 1

PyMODINIT_FUNC PyInit__ftrace(void)
{
    PyObject *m = PyModule_Create(&module);
    if (m != NULL && PyModule_AddIntConstant(m, "ABI", FTRACE_ABI) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
