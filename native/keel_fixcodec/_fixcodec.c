/* keel_fixcodec: the hot loops of keel's FIX codec in C (optional; keel.venues.fix.codec falls
 * back to its pure-Python code when this module is not installed).
 *
 * parse(data)  -> (tags, values, body_start, last_start, checksum) or None
 *     Split a whole frame ``tag=value<SOH>...`` in one pass: tags as a tuple of ints, values as
 *     a list of str (Latin-1, every byte round-trips), the offset of the third field (where
 *     BodyLength starts counting), the offset of the last field (CheckSum) and the byte sum
 *     modulo 256 of everything before it. None when the frame is not of the common form
 *     (a tag that is not 1-9 plain digits, a field with no '=', no SOH at the end, fewer than
 *     4 fields): the caller takes its general path, which names the error.
 *
 * maps(tags, values, nh, nt) -> (header, body, trailer)
 *     Three dicts: fields [0, nh), [nh, nt) and [nt, n).
 *
 * frames(data, max_size) -> (frames, used)
 *     The complete, regular frames at the start of ``data`` (``8=..|9=N|`` + N bytes whose
 *     last is SOH + ``10=...|``) and the bytes they take; stops at anything else (garbage, a
 *     partial frame, a CheckSum not right after the body, a frame over ``max_size``), which
 *     the caller's splitter then handles from ``used`` on.
 *
 * encode(begin, keys, values) -> bytes or None
 *     A complete frame ``8=begin|9=len|`` + ``keys[i] value[i] <SOH>``... + ``10=sum|``;
 *     keys are the bytes ``b"35="`` etc. None when a value is not a str, holds a control
 *     character (SOH included: it would inject a tag) or a character outside Latin-1: the
 *     caller's Python path then decides (DATA fields may carry any byte) and names the field.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *
fc_parse(PyObject *self, PyObject *arg)
{
    (void)self;
    if (!PyBytes_Check(arg)) {
        PyErr_SetString(PyExc_TypeError, "parse() takes bytes");
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)PyBytes_AS_STRING(arg);
    Py_ssize_t n = PyBytes_GET_SIZE(arg);
    if (n < 2 || s[n - 1] != 1) {
        Py_RETURN_NONE;
    }
    /* count fields first so the tuple is allocated once */
    Py_ssize_t nf = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == 1) nf++;
    }
    if (nf < 4) {
        Py_RETURN_NONE;
    }
    PyObject *tags = PyTuple_New(nf);
    PyObject *values = PyList_New(nf);
    if (tags == NULL || values == NULL) {
        Py_XDECREF(tags);
        Py_XDECREF(values);
        return NULL;
    }
    Py_ssize_t pos = 0, k = 0, body_start = 0, last_start = 0;
    unsigned long sum = 0;
    while (pos < n) {
        Py_ssize_t fstart = pos;
        long tag = 0;
        int digits = 0;
        while (pos < n && s[pos] >= '0' && s[pos] <= '9') {
            tag = tag * 10 + (s[pos] - '0');
            digits++;
            pos++;
        }
        if (digits == 0 || digits > 9 || pos >= n || s[pos] != '='
                || (digits > 1 && s[fstart] == '0')) {
            goto fallback;
        }
        pos++; /* '=' */
        const unsigned char *vstart = s + pos;
        const unsigned char *soh = memchr(vstart, 1, (size_t)(n - pos));
        if (soh == NULL) {
            goto fallback;
        }
        Py_ssize_t vlen = soh - vstart;
        PyObject *t = PyLong_FromLong(tag);
        if (t == NULL) goto error;
        PyObject *v = PyUnicode_DecodeLatin1((const char *)vstart, vlen, NULL);
        if (v == NULL) {
            Py_DECREF(t);
            goto error;
        }
        PyTuple_SET_ITEM(tags, k, t);
        PyList_SET_ITEM(values, k, v);
        if (k == 2) body_start = fstart;
        if (k == nf - 1) {
            last_start = fstart;
        } else {
            for (Py_ssize_t i = fstart; i <= pos + vlen; i++) sum += s[i];
        }
        k++;
        pos += vlen + 1;
    }
    if (k != nf) goto fallback;
    return Py_BuildValue("(NNnnk)", tags, values, body_start, last_start, sum & 0xFFUL);
fallback:
    Py_DECREF(tags);
    Py_DECREF(values);
    Py_RETURN_NONE;
error:
    Py_DECREF(tags);
    Py_DECREF(values);
    return NULL;
}

static PyObject *
fc_maps(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *tags, *values;
    Py_ssize_t nh, nt;
    if (!PyArg_ParseTuple(args, "O!O!nn", &PyTuple_Type, &tags, &PyList_Type, &values, &nh,
                          &nt)) {
        return NULL;
    }
    Py_ssize_t n = PyTuple_GET_SIZE(tags);
    if (PyList_GET_SIZE(values) != n || nh < 0 || nt < nh || nt > n) {
        PyErr_SetString(PyExc_ValueError, "maps(): bad bounds");
        return NULL;
    }
    PyObject *d[3] = {PyDict_New(), PyDict_New(), PyDict_New()};
    if (d[0] == NULL || d[1] == NULL || d[2] == NULL) goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *target = i < nh ? d[0] : (i < nt ? d[1] : d[2]);
        if (PyDict_SetItem(target, PyTuple_GET_ITEM(tags, i), PyList_GET_ITEM(values, i)) < 0)
            goto error;
    }
    return Py_BuildValue("(NNN)", d[0], d[1], d[2]);
error:
    Py_XDECREF(d[0]);
    Py_XDECREF(d[1]);
    Py_XDECREF(d[2]);
    return NULL;
}

/* Latin-1 bytes of a str value, or -1 when it cannot go on the wire as a plain field. */
static Py_ssize_t
value_bytes(PyObject *v, const unsigned char **out)
{
    if (!PyUnicode_Check(v) || PyUnicode_READY(v) < 0) return -1;
    if (PyUnicode_KIND(v) != PyUnicode_1BYTE_KIND) return -1; /* beyond Latin-1 */
    const unsigned char *p = PyUnicode_1BYTE_DATA(v);
    Py_ssize_t len = PyUnicode_GET_LENGTH(v);
    for (Py_ssize_t i = 0; i < len; i++) {
        unsigned char c = p[i];
        if (c < 0x20 || (c >= 0x7f && c <= 0x9f)) return -1;
    }
    *out = p;
    return len;
}

static PyObject *
fc_encode(PyObject *self, PyObject *args)
{
    (void)self;
    PyObject *begin, *keys, *values;
    if (!PyArg_ParseTuple(args, "UO!O", &begin, &PyTuple_Type, &keys, &values)) {
        return NULL;
    }
    PyObject *vals = PySequence_Fast(values, "encode(): values must be a sequence");
    if (vals == NULL) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(keys);
    if (PySequence_Fast_GET_SIZE(vals) != n) {
        Py_DECREF(vals);
        PyErr_SetString(PyExc_ValueError, "encode(): as many keys as values");
        return NULL;
    }
    const unsigned char *bp;
    Py_ssize_t blen = value_bytes(begin, &bp);
    if (blen < 0) {
        Py_DECREF(vals);
        Py_RETURN_NONE;
    }
    PyObject **items = PySequence_Fast_ITEMS(vals);
    Py_ssize_t body_len = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyTuple_GET_ITEM(keys, i);
        const unsigned char *vp;
        if (!PyBytes_Check(key)) {
            Py_DECREF(vals);
            PyErr_SetString(PyExc_TypeError, "encode(): keys must be bytes");
            return NULL;
        }
        Py_ssize_t vl = value_bytes(items[i], &vp);
        if (vl < 0) {
            Py_DECREF(vals);
            Py_RETURN_NONE;
        }
        body_len += PyBytes_GET_SIZE(key) + vl + 1;
    }
    char head[64];
    if (blen > 32) {
        Py_DECREF(vals);
        Py_RETURN_NONE;
    }
    int hl = snprintf(head, sizeof head, "8=%.*s\x01" "9=%zd\x01", (int)blen, (const char *)bp,
                      body_len);
    Py_ssize_t total = hl + body_len + 7;
    PyObject *out = PyBytes_FromStringAndSize(NULL, total);
    if (out == NULL) {
        Py_DECREF(vals);
        return NULL;
    }
    unsigned char *w = (unsigned char *)PyBytes_AS_STRING(out);
    memcpy(w, head, (size_t)hl);
    unsigned char *p = w + hl;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *key = PyTuple_GET_ITEM(keys, i);
        Py_ssize_t kl = PyBytes_GET_SIZE(key);
        memcpy(p, PyBytes_AS_STRING(key), (size_t)kl);
        p += kl;
        const unsigned char *vp = PyUnicode_1BYTE_DATA(items[i]);
        Py_ssize_t vl = PyUnicode_GET_LENGTH(items[i]);
        memcpy(p, vp, (size_t)vl);
        p += vl;
        *p++ = 1;
    }
    unsigned long sum = 0;
    for (unsigned char *q = w; q < p; q++) sum += *q;
    sum &= 0xFF;
    p[0] = '1';
    p[1] = '0';
    p[2] = '=';
    p[3] = (unsigned char)('0' + sum / 100);
    p[4] = (unsigned char)('0' + (sum / 10) % 10);
    p[5] = (unsigned char)('0' + sum % 10);
    p[6] = 1;
    Py_DECREF(vals);
    return out;
}

static PyObject *
fc_frames(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer view;
    Py_ssize_t max_size;
    if (!PyArg_ParseTuple(args, "y*n", &view, &max_size)) {
        return NULL;
    }
    const unsigned char *s = (const unsigned char *)view.buf;
    Py_ssize_t n = view.len, pos = 0;
    PyObject *out = PyList_New(0);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    while (pos + 2 <= n && s[pos] == '8' && s[pos + 1] == '=') {
        const unsigned char *soh = memchr(s + pos, 1, (size_t)(n - pos));
        if (soh == NULL) break;
        Py_ssize_t i = soh - s; /* SOH after BeginString */
        if (i + 3 > n || s[i + 1] != '9' || s[i + 2] != '=') break;
        Py_ssize_t j = i + 3, len = 0;
        int digits = 0;
        while (j < n && s[j] >= '0' && s[j] <= '9' && digits < 9) {
            len = len * 10 + (s[j] - '0');
            j++;
            digits++;
        }
        if (digits == 0 || j >= n || s[j] != 1 || len < 1) break;
        Py_ssize_t end = j + 1 + len; /* first byte after the body */
        if (end + 4 > n || s[end - 1] != 1 || s[end] != '1' || s[end + 1] != '0'
                || s[end + 2] != '=') {
            break;
        }
        const unsigned char *last = memchr(s + end + 3, 1, (size_t)(n - end - 3));
        if (last == NULL) break;
        Py_ssize_t stop = last - s + 1;
        if (stop - pos > max_size) break;
        PyObject *frame = PyBytes_FromStringAndSize((const char *)s + pos, stop - pos);
        if (frame == NULL || PyList_Append(out, frame) < 0) {
            Py_XDECREF(frame);
            Py_DECREF(out);
            PyBuffer_Release(&view);
            return NULL;
        }
        Py_DECREF(frame);
        pos = stop;
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(Nn)", out, pos);
}

static PyMethodDef methods[] = {
    {"frames", fc_frames, METH_VARARGS, "Complete regular frames at the start of a buffer."},
    {"parse", fc_parse, METH_O, "Split a FIX frame into tags, values, offsets and checksum."},
    {"maps", fc_maps, METH_VARARGS, "Header, body and trailer dicts from tags and values."},
    {"encode", fc_encode, METH_VARARGS, "A complete FIX frame from keys and values."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "keel_fixcodec._fixcodec",
    "The hot loops of keel's FIX codec in C (optional).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC
PyInit__fixcodec(void)
{
    return PyModule_Create(&module);
}
