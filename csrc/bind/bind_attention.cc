// bind_attention.cc — multi_head_attention (padded, with masks), multi_head_attention_varlen (packed) and
// KVCache. q/k/v may be row-strided views (e.g. slices of a fused QKV projection): read in place.
#include <algorithm>
#include <cmath>
#include <optional>
#include <sstream>
#include <string>

#include "bind/array_args.h"
#include "bind/bindings.h"
#include "ops/attention.h"
#include "ops/kv_cache.h"

namespace cpuformer::bind {
namespace {

// A 0/1 padding mask as the attention driver reads it: uint8 flags, rows `row_stride` bytes apart.
struct MaskInput {
  py::array keep;  // owns or borrows the bytes
  const uint8_t* data;
  int64_t row_stride;
};

int64_t head_dim_of(int64_t hidden, int64_t num_heads, const char* name) {
  if (num_heads < 1) throw py::value_error("num_heads must be >= 1, got " + std::to_string(num_heads));
  if (hidden == 0 || hidden % num_heads != 0)
    throw py::value_error(std::string(name) + "'s last axis must be num_heads * head_dim with head_dim >= 1: " +
                          std::to_string(hidden) + " is not a positive multiple of num_heads=" + std::to_string(num_heads));
  return hidden / num_heads;
}

// num_kv_heads= of the attention entry points: None = num_heads (plain multi-head attention); otherwise it must
// divide num_heads (grouped-query attention: k and v have num_kv_heads heads of head_dim).
int64_t kv_heads_of(const py::handle& obj, int64_t num_heads) {
  if (obj.is_none()) return num_heads;
  if (!py::isinstance<py::int_>(obj) || py::isinstance<py::bool_>(obj))
    throw py::type_error("num_kv_heads must be an int or None, got " + type_name(obj));
  const int64_t kv = obj.cast<int64_t>();
  if (kv < 1 || num_heads % kv != 0)
    throw py::value_error("num_kv_heads must be >= 1 and divide num_heads=" + std::to_string(num_heads) + ", got " +
                          std::to_string(kv));
  return kv;
}

float scale_of(const py::handle& scale, int64_t head_dim) {
  if (scale.is_none()) return static_cast<float>(1.0 / std::sqrt(static_cast<double>(head_dim)));
  const double s = scale.cast<double>();
  if (!std::isfinite(s)) throw py::value_error("scale must be a finite number, got " + std::to_string(s));
  return static_cast<float>(s);
}

[[noreturn]] void throw_not_01(const char* name, double value, int64_t row, int64_t col) {
  std::ostringstream s;
  s << name << " must contain only 0 and 1 (1 = attend, 0 = padding), got " << value << " at [" << row << ", "
    << col << "]";
  throw py::value_error(s.str());
}

// 0/1 padding mask of shape (rows, cols). bool and uint8 masks whose columns are contiguous are read in place,
// rows at any stride (generation makes its mask once and passes a column slice of it at every layer and step;
// uint8 values are still checked, a byte scan); other integer and float dtypes are converted to uint8 once.
std::optional<MaskInput> mask_input(const py::handle& obj, const char* name, int64_t rows, int64_t cols) {
  if (obj.is_none()) return std::nullopt;
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy.ndarray of 0/1 values, got " + type_name(obj));
  py::array arr = py::reinterpret_borrow<py::array>(obj);
  const char kind = arr.dtype().kind();
  if (kind != 'b' && kind != 'i' && kind != 'u' && kind != 'f')
    throw py::type_error(std::string(name) + " must have a bool, integer or float dtype, got " +
                         std::string(py::str(arr.dtype())));
  if (arr.ndim() != 2 || arr.shape(0) != rows || arr.shape(1) != cols)
    throw py::value_error(std::string(name) + " must have shape " + shape_str({rows, cols}) + ", got " + shape_str(arr));
  const bool bytes = kind == 'b' || (kind == 'u' && arr.itemsize() == 1);
  if (bytes && (cols <= 1 || arr.strides(1) == 1) && arr.strides(0) >= 0) {
    const auto* data = static_cast<const uint8_t*>(arr.data());
    const int64_t row_stride = arr.strides(0);
    if (kind == 'u')
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c)
          if (data[r * row_stride + c] > 1) throw_not_01(name, data[r * row_stride + c], r, c);
    return MaskInput{arr, data, row_stride};
  }
  auto values = py::array_t<double, py::array::c_style | py::array::forcecast>::ensure(arr);
  py::array_t<uint8_t, py::array::c_style> mask({rows, cols});
  const double* src = values.data();
  uint8_t* dst = mask.mutable_data();
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (src[i] != 0.0 && src[i] != 1.0) throw_not_01(name, src[i], i / cols, i % cols);
    dst[i] = src[i] != 0.0;
  }
  return MaskInput{mask, mask.data(), cols};
}

FloatArray output_for(const py::handle& out_obj, const std::vector<py::ssize_t>& shape,
                      std::initializer_list<const StridedFloatArray*> inputs) {
  FloatArray out = out_obj.is_none() ? FloatArray(shape) : float_output(out_obj, "out", shape);
  for (const StridedFloatArray* in : inputs)
    if (overlaps(out, in->array)) throw py::value_error("out must not share memory with q, k or v");
  return out;
}

// [batch, rows, heads * dim] (or [rows, heads * dim] with batch_rank 0) -> HeadRows.
HeadRows<const float> head_rows(const StridedFloatArray& a, int64_t dim) {
  if (a.shape.size() == 3) return {a.data, a.strides[0], a.strides[1], dim};
  return {a.data, 0, a.strides[0], dim};
}

HeadRows<float> head_rows(FloatArray& out, int64_t dim) {
  const int64_t hidden = out.shape(out.ndim() - 1);
  if (out.ndim() == 3) return {out.mutable_data(), out.shape(1) * hidden, hidden, dim};
  return {out.mutable_data(), 0, hidden, dim};
}

// The fields padded and varlen attention share: row views of q, k, v and out, heads, causal, scale.
AttentionProblem problem_for(const StridedFloatArray& q, const StridedFloatArray& k, const StridedFloatArray& v,
                             FloatArray& out, int64_t batch, int64_t num_heads, int64_t kv_heads, int64_t dim,
                             bool causal, float scale) {
  AttentionProblem p;
  p.batch = batch;
  p.heads = num_heads;
  p.kv_heads = kv_heads;
  p.head_dim = dim;
  p.q = head_rows(q, dim);
  p.k = head_rows(k, dim);
  p.v = head_rows(v, dim);
  p.out = head_rows(out, dim);
  p.causal = causal;
  p.scale = scale;
  return p;
}

py::array run_padded(const py::handle& q_obj, const py::handle& k_obj, const py::handle& v_obj, int64_t num_heads,
                     const py::handle& mask_obj, bool causal, const py::handle& scale_obj, const py::handle& out_obj,
                     const py::handle& kv_heads_obj) {
  const StridedFloatArray q = strided_float_input(q_obj, "q", 3, "(batch, q_len, num_heads * head_dim)");
  const StridedFloatArray k = strided_float_input(k_obj, "k", 3, "(batch, k_len, num_kv_heads * head_dim)");
  const StridedFloatArray v = strided_float_input(v_obj, "v", 3, "(batch, k_len, num_kv_heads * head_dim)");
  const int64_t batch = q.shape[0], tq = q.shape[1], hidden = q.shape[2];
  const int64_t dim = head_dim_of(hidden, num_heads, "q");
  const int64_t kv_heads = kv_heads_of(kv_heads_obj, num_heads), kv_hidden = kv_heads * dim;
  const int64_t tk = k.shape[1];
  if (k.shape[0] != batch || k.shape[2] != kv_hidden)
    throw py::value_error("k must have shape (" + std::to_string(batch) + ", k_len, " + std::to_string(kv_hidden) +
                          ") to match q " + shape_str(q.shape) +
                          (kv_heads != num_heads ? " with num_kv_heads=" + std::to_string(kv_heads) : "") +
                          ", got " + shape_str(k.shape));
  if (v.shape != k.shape) throw py::value_error("v must have the shape of k " + shape_str(k.shape) + ", got " + shape_str(v.shape));
  const std::optional<MaskInput> mask = mask_input(mask_obj, "attention_mask", batch, tk);
  const float scale = scale_of(scale_obj, dim);
  FloatArray out = output_for(out_obj, {batch, tq, hidden}, {&q, &k, &v});

  AttentionProblem p = problem_for(q, k, v, out, batch, num_heads, kv_heads, dim, causal, scale);
  p.q_begin.assign(batch, 0);
  p.q_len.assign(batch, tq);
  p.k_begin.assign(batch, 0);
  p.k_len.assign(batch, tk);
  p.key_mask = mask ? mask->data : nullptr;
  p.mask_batch_stride = mask ? mask->row_stride : tk;
  {
    py::gil_scoped_release release;
    multi_head_attention(p);
  }
  return std::move(out);
}

// cu_seqlens [B + 1]: 0 = cu[0] <= cu[1] <= ... <= cu[B] = total.
std::vector<int64_t> cu_seqlens_input(const py::handle& obj, int64_t total) {
  const Int64Array arr = int64_input(obj, "cu_seqlens");
  if (arr.ndim() != 1 || arr.shape(0) < 1)
    throw py::value_error("cu_seqlens must have shape (batch + 1,) with batch >= 0, got " + shape_str(arr));
  std::vector<int64_t> cu(arr.data(), arr.data() + arr.size());
  if (cu.front() != 0) throw py::value_error("cu_seqlens must start at 0, got " + std::to_string(cu.front()));
  for (size_t i = 1; i < cu.size(); ++i)
    if (cu[i] < cu[i - 1])
      throw py::value_error("cu_seqlens must be non-decreasing, got " + std::to_string(cu[i - 1]) + " then " +
                            std::to_string(cu[i]) + " at index " + std::to_string(i));
  if (cu.back() != total)
    throw py::value_error("cu_seqlens must end at the number of packed tokens " + std::to_string(total) + ", got " +
                          std::to_string(cu.back()));
  return cu;
}

py::array run_varlen(const py::handle& q_obj, const py::handle& k_obj, const py::handle& v_obj,
                     const py::handle& cu_obj, int64_t num_heads, bool causal, const py::handle& scale_obj,
                     const py::handle& out_obj, const py::handle& bias_obj, const py::handle& kv_heads_obj) {
  const StridedFloatArray q = strided_float_input(q_obj, "q", 2, "(total_tokens, num_heads * head_dim)");
  const StridedFloatArray k = strided_float_input(k_obj, "k", 2, "(total_tokens, num_kv_heads * head_dim)");
  const StridedFloatArray v = strided_float_input(v_obj, "v", 2, "(total_tokens, num_kv_heads * head_dim)");
  const int64_t total = q.shape[0], hidden = q.shape[1];
  const int64_t dim = head_dim_of(hidden, num_heads, "q");
  const int64_t kv_heads = kv_heads_of(kv_heads_obj, num_heads);
  const std::vector<int64_t> kv_shape{total, kv_heads * dim};
  if (kv_heads == num_heads) {
    if (k.shape != q.shape) throw py::value_error("k must have the shape of q " + shape_str(q.shape) + ", got " + shape_str(k.shape));
    if (v.shape != q.shape) throw py::value_error("v must have the shape of q " + shape_str(q.shape) + ", got " + shape_str(v.shape));
  } else {
    if (k.shape != kv_shape)
      throw py::value_error("k must have shape " + shape_str(kv_shape) + " (q " + shape_str(q.shape) +
                            " with num_kv_heads=" + std::to_string(kv_heads) + "), got " + shape_str(k.shape));
    if (v.shape != k.shape) throw py::value_error("v must have the shape of k " + shape_str(k.shape) + ", got " + shape_str(v.shape));
  }
  const std::vector<int64_t> cu = cu_seqlens_input(cu_obj, total);
  const float scale = scale_of(scale_obj, dim);
  FloatArray out = output_for(out_obj, {total, hidden}, {&q, &k, &v});

  AttentionProblem p =
      problem_for(q, k, v, out, static_cast<int64_t>(cu.size()) - 1, num_heads, kv_heads, dim, causal, scale);
  for (int64_t b = 0; b < p.batch; ++b) {
    p.q_begin.push_back(cu[b]);
    p.q_len.push_back(cu[b + 1] - cu[b]);
  }
  p.k_begin = p.q_begin;
  p.k_len = p.q_len;
  const std::optional<FloatArray> bias = optional_float_input(bias_obj, "relative_bias");
  if (bias) {
    const int64_t longest = p.q_len.empty() ? 0 : *std::max_element(p.q_len.begin(), p.q_len.end());
    if (bias->ndim() != 2 || bias->shape(0) != num_heads || bias->shape(1) % 2 == 0 ||
        (bias->shape(1) + 1) / 2 < longest)
      throw py::value_error("relative_bias must have shape (num_heads=" + std::to_string(num_heads) +
                            ", 2 * L - 1) with L >= the longest sequence (" + std::to_string(longest) + "), got " +
                            shape_str(*bias));
    p.relative_bias = bias->data();
    p.relative_bias_head_stride = bias->shape(1);
    p.relative_bias_center = (bias->shape(1) - 1) / 2;
  }
  {
    py::gil_scoped_release release;
    multi_head_attention(p);
  }
  return std::move(out);
}

// rows= of KVCache.append / attend / reset: None (every row, in order) or a 1-D int array or list of distinct
// cache rows, checked by KVCache::check_rows. An empty list would read as "every row", so it is an error here.
std::vector<int64_t> cache_rows_arg(const KVCache& c, const py::handle& obj) {
  if (obj.is_none()) return {};
  std::vector<int64_t> rows;
  if (py::isinstance<py::list>(obj) || py::isinstance<py::tuple>(obj)) {
    for (const py::handle item : obj) {
      if (!py::isinstance<py::int_>(item) || py::isinstance<py::bool_>(item))
        throw py::type_error("rows must hold ints, got " + type_name(item));
      rows.push_back(item.cast<int64_t>());
    }
  } else {
    const Int64Array arr = int64_input(obj, "rows");
    if (arr.ndim() != 1) throw py::value_error("rows must be 1-D, got shape " + shape_str(arr));
    rows.assign(arr.data(), arr.data() + arr.size());
  }
  if (rows.empty()) throw py::value_error("rows must name at least one cache row (None = every row)");
  return c.check_rows(rows);
}

// k/v/q for KVCache.append / attend: [sequences, tokens, heads * dim], one sequence per row taken (or per row);
// `heads` is num_kv_heads for k and v, num_heads for q.
StridedFloatArray cache_rows_input(const KVCache& c, const py::handle& obj, const char* name, int64_t sequences,
                                   int64_t heads) {
  const std::string want = "(" + std::to_string(sequences) + ", tokens, " + std::to_string(heads * c.head_dim()) + ")";
  StridedFloatArray a = strided_float_input(obj, name, 3, want.c_str());
  if (a.shape[0] != sequences || a.shape[2] != heads * c.head_dim())
    throw py::value_error(std::string(name) + " must have shape " + want + ", got " + shape_str(a.shape));
  return a;
}

int64_t sequences_of(const KVCache& c, const std::vector<int64_t>& rows) {
  return rows.empty() ? c.batch() : static_cast<int64_t>(rows.size());
}

void cache_append(KVCache& c, int64_t layer, const py::handle& k_obj, const py::handle& v_obj,
                  const py::handle& rows_obj) {
  const std::vector<int64_t> rows = cache_rows_arg(c, rows_obj);
  const StridedFloatArray k = cache_rows_input(c, k_obj, "k", sequences_of(c, rows), c.num_kv_heads());
  const StridedFloatArray v = cache_rows_input(c, v_obj, "v", sequences_of(c, rows), c.num_kv_heads());
  if (v.shape != k.shape)
    throw py::value_error("v must have the shape of k " + shape_str(k.shape) + ", got " + shape_str(v.shape));
  const HeadRows<const float> kr = head_rows(k, c.head_dim()), vr = head_rows(v, c.head_dim());
  py::gil_scoped_release release;
  c.append(layer, kr, vr, k.shape[1], rows);
}

py::array cache_attend(const KVCache& c, int64_t layer, const py::handle& q_obj, const py::handle& mask_obj,
                       bool causal, const py::handle& scale_obj, const py::handle& out_obj,
                       const py::handle& rows_obj) {
  const std::vector<int64_t> rows = cache_rows_arg(c, rows_obj);
  const int64_t n = sequences_of(c, rows);
  const StridedFloatArray q = cache_rows_input(c, q_obj, "q", n, c.num_heads());
  const int64_t tq = q.shape[1];
  const int64_t cached = c.longest(layer, rows);
  const std::optional<MaskInput> mask = mask_input(mask_obj, "attention_mask", n, cached);
  const float scale = scale_of(scale_obj, c.head_dim());
  FloatArray out = output_for(out_obj, {n, tq, c.num_heads() * c.head_dim()}, {&q});
  const HeadRows<const float> qr = head_rows(q, c.head_dim());
  const HeadRows<float> outr = head_rows(out, c.head_dim());
  const uint8_t* mp = mask ? mask->data : nullptr;
  const int64_t row_stride = mask ? mask->row_stride : cached;
  {
    py::gil_scoped_release release;
    c.attend(layer, qr, tq, mp, cached, row_stride, causal, scale, outr, rows);
  }
  return std::move(out);
}

py::array cache_copy(const KVCache& c, int64_t layer, bool values) {
  const int64_t len = c.longest(layer);
  FloatArray out({c.batch(), len, c.num_kv_heads() * c.head_dim()});
  float* op = out.mutable_data();
  {
    py::gil_scoped_release release;
    c.copy_out(layer, values, op, len);
  }
  return std::move(out);
}

}  // namespace

void bind_attention(py::module_& m) {
  m.def("multi_head_attention", &run_padded, py::arg("q"), py::arg("k"), py::arg("v"), py::arg("num_heads"),
        py::arg("attention_mask") = py::none(), py::arg("causal") = false, py::arg("scale") = py::none(),
        py::kw_only(), py::arg("out") = py::none(), py::arg("num_kv_heads") = py::none(), R"doc(
Fused multi-head attention softmax(scale q k^T + mask) v with an online softmax (no [B, H, Tq, Tk] scores).

q: float32 [B, Tq, H*D]; k, v: [B, Tk, H*D] (head h = columns h*D:(h+1)*D, as in Hugging Face). Row-strided
views such as qkv[..., :H*D] of a fused projection are read in place (the last axis must be contiguous).
attention_mask: [B, Tk] of 0/1 (bool, int or float; 1 = attend, 0 = padding).
causal: query i sees key j only when j <= i + Tk - Tq (the last query is aligned with the last key).
scale: defaults to 1/sqrt(D). A query that sees no key gets zeros. out: optional C-contiguous [B, Tq, H*D].
num_kv_heads: grouped-query attention (None = num_heads): k and v are [B, Tk, KVH*D] and query head h reads KV
head h // (H // KVH); KVH must divide H. K/V are read once per KV head, never repeated.)doc");
  m.def("multi_head_attention_varlen", &run_varlen, py::arg("q"), py::arg("k"), py::arg("v"),
        py::arg("cu_seqlens"), py::arg("num_heads"), py::arg("causal") = false, py::arg("scale") = py::none(),
        py::kw_only(), py::arg("out") = py::none(), py::arg("relative_bias") = py::none(),
        py::arg("num_kv_heads") = py::none(), R"doc(
Attention over packed sequences of mixed lengths (no padding work).

q, k, v: float32 [total_tokens, H*D] (row-strided views allowed); cu_seqlens: int [B + 1], starting at 0,
non-decreasing, ending at total_tokens: sequence b is rows cu_seqlens[b]:cu_seqlens[b+1] and attends only to
itself. relative_bias: optional float32 [H, 2L - 1] (L >= the longest sequence): the score of query i and key j
(positions in their sequence) gains relative_bias[h, j - i + L - 1] after scaling (MPNet's relative position
bias; never expanded to [B, H, T, T]). num_kv_heads: grouped-query attention as in multi_head_attention (k, v:
[total_tokens, KVH*D]). Returns [total_tokens, H*D].)doc");

  py::class_<KVCache>(m, "KVCache", R"doc(
Preallocated key/value cache for incremental decoding, stored [num_layers, batch, num_kv_heads, max_len, head_dim]
so each head's keys are contiguous. append() copies only the new rows; attend() reads the cache in place.
num_kv_heads (default num_heads, must divide it): grouped-query attention. append() takes k, v with num_kv_heads
heads, attend() takes q with num_heads heads; query head h reads KV head h // (num_heads // num_kv_heads).)doc")
      .def(py::init([](int64_t layers, int64_t batch, int64_t heads, int64_t dim, int64_t max_len,
                       const py::handle& kv_heads) {
             int64_t kv = 0;
             if (!kv_heads.is_none()) {
               if (!py::isinstance<py::int_>(kv_heads) || py::isinstance<py::bool_>(kv_heads))
                 throw py::type_error("num_kv_heads must be an int or None, got " + type_name(kv_heads));
               kv = kv_heads.cast<int64_t>();
               if (kv < 1) throw py::value_error("KVCache: num_kv_heads must be >= 1, got " + std::to_string(kv));
             }
             return new KVCache(layers, batch, heads, dim, max_len, kv);
           }),
           py::arg("num_layers"), py::arg("batch"), py::arg("num_heads"), py::arg("head_dim"), py::arg("max_len"),
           py::kw_only(), py::arg("num_kv_heads") = py::none())
      .def("append", &cache_append, py::arg("layer"), py::arg("k"), py::arg("v"), py::kw_only(),
           py::arg("rows") = py::none(),
           "k, v: float32 [batch, T, num_kv_heads*head_dim] (row-strided views allowed), written at the layer's "
           "current lengths, which then advance by T. rows: the cache rows k and v's sequences go to (distinct; "
           "then k is [len(rows), T, ...]), so rows advance independently; None = every row. ValueError if a row "
           "would exceed max_len.")
      .def("attend", &cache_attend, py::arg("layer"), py::arg("q"), py::arg("attention_mask") = py::none(),
           py::arg("causal") = true, py::arg("scale") = py::none(), py::arg("out") = py::none(), py::kw_only(),
           py::arg("rows") = py::none(),
           "q: float32 [batch, Tq, num_heads*head_dim] -> [batch, Tq, num_heads*head_dim] over the layer's cached "
           "keys. attention_mask: [batch, cached_len] of 0/1 (left padding). causal aligns each row's last query "
           "with its last cached key. rows: q's sequences attend to these cache rows (q is [len(rows), Tq, ...], "
           "the mask [len(rows), longest of them]); None = every row.")
      .def(
          "lengths",
          [](const KVCache& c, int64_t layer) {
            std::vector<int64_t> n = c.lengths(layer);
            py::array_t<int64_t> out(static_cast<py::ssize_t>(n.size()));
            std::copy(n.begin(), n.end(), out.mutable_data());
            return out;
          },
          py::arg("layer") = 0, "Cached tokens per sequence of `layer` (int64 [batch]).")
      .def(
          "reset", [](KVCache& c, const py::handle& rows) { c.reset(cache_rows_arg(c, rows)); },
          py::arg("rows") = py::none(),
          "Forget the cached tokens of `rows` in every layer (None: every row); storage is kept, rows are reused.")
      .def(
          "reorder",
          [](KVCache& c, const py::handle& source_obj) {
            const Int64Array source = int64_input(source_obj, "source");
            if (source.ndim() != 1) throw py::value_error("source must be 1-D, got shape " + shape_str(source));
            std::vector<int64_t> rows(source.data(), source.data() + source.size());
            py::gil_scoped_release release;
            c.reorder(rows);
          },
          py::arg("source"),
          "Row b becomes a copy of old row source[b] in every layer (keys, values, length); source: int [batch] "
          "in [0, batch), repeats allowed (beam search keeps the winning beams' caches).")
      .def("trim", &KVCache::trim, py::arg("length"), "Keep at most `length` tokens per sequence in every layer.")
      .def("keys", [](const KVCache& c, int64_t layer) { return cache_copy(c, layer, false); }, py::arg("layer"),
           "A copy of the layer's cached keys, [batch, cached_len, num_kv_heads*head_dim].")
      .def("values", [](const KVCache& c, int64_t layer) { return cache_copy(c, layer, true); }, py::arg("layer"),
           "A copy of the layer's cached values, [batch, cached_len, num_kv_heads*head_dim].")
      .def_property_readonly("num_layers", &KVCache::num_layers)
      .def_property_readonly("batch", &KVCache::batch)
      .def_property_readonly("num_heads", &KVCache::num_heads)
      .def_property_readonly("num_kv_heads", &KVCache::num_kv_heads)
      .def_property_readonly("head_dim", &KVCache::head_dim)
      .def_property_readonly("max_len", &KVCache::max_len)
      .def("__repr__", [](const KVCache& c) {
        return "KVCache(num_layers=" + std::to_string(c.num_layers()) + ", batch=" + std::to_string(c.batch()) +
               ", num_heads=" + std::to_string(c.num_heads()) + ", head_dim=" + std::to_string(c.head_dim()) +
               ", max_len=" + std::to_string(c.max_len()) +
               (c.num_kv_heads() != c.num_heads() ? ", num_kv_heads=" + std::to_string(c.num_kv_heads()) : "") + ")";
      });
}

}  // namespace cpuformer::bind
