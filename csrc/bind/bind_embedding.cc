// bind_embedding.cc — embedding(ids, table) and embedding_bag(ids, offsets, table, mode).
#include "bind/array_args.h"
#include "bind/bindings.h"
#include "ops/embedding.h"

namespace cpuformer::bind {

void bind_embedding(py::module_& m) {
  m.def(
      "embedding",
      [](const py::handle& ids_obj, const py::handle& table_obj) {
        FloatArray table = float_input(table_obj, "table", 2, 2, -1, "(num_embeddings, dim)");
        const int64_t rows = table.shape(0), dim = table.shape(1);
        const std::string what = "a table with " + std::to_string(rows) + " rows";
        Int64Array ids = ids_input(ids_obj, "ids", rows, what.c_str());
        std::vector<py::ssize_t> shape(ids.shape(), ids.shape() + ids.ndim());
        shape.push_back(dim);
        FloatArray out(shape);
        const int64_t* ip = ids.data();
        const float* tp = table.data();
        float* op = out.mutable_data();
        const int64_t n = ids.size();
        {
          py::gil_scoped_release release;
          embedding(ip, n, tp, dim, op);
        }
        return out;
      },
      py::arg("ids"), py::arg("table"), "table[ids]: ids of any shape and integer dtype -> ids.shape + (dim,).");
  m.def(
      "embedding_bag",
      [](const py::handle& ids_obj, const py::handle& offsets_obj, const py::handle& table_obj,
         const std::string& mode_name) {
        BagMode mode;
        if (mode_name == "sum") mode = BagMode::sum;
        else if (mode_name == "mean") mode = BagMode::mean;
        else throw py::value_error("mode must be 'sum' or 'mean', got '" + mode_name + "'");
        FloatArray table = float_input(table_obj, "table", 2, 2, -1, "(num_embeddings, dim)");
        const int64_t rows = table.shape(0), dim = table.shape(1);
        const std::string what = "a table with " + std::to_string(rows) + " rows";
        Int64Array ids = ids_input(ids_obj, "ids", rows, what.c_str());
        if (ids.ndim() != 1) throw py::value_error("ids must be 1-D (all bags concatenated), got " + shape_str(ids));
        const int64_t n = ids.size();
        Int64Array offsets = ids_input(offsets_obj, "offsets", n + 1, "bag offsets into ids");
        if (offsets.ndim() != 1) throw py::value_error("offsets must be 1-D, got " + shape_str(offsets));
        const int64_t bags = offsets.size();
        const int64_t* offp = offsets.data();
        if (bags > 0 && offp[0] != 0)
          throw py::value_error("offsets[0] must be 0 (the first bag starts at ids[0]), got " + std::to_string(offp[0]));
        for (int64_t b = 1; b < bags; ++b)
          if (offp[b] < offp[b - 1])
            throw py::value_error("offsets must be non-decreasing; offsets[" + std::to_string(b) + "] = " +
                                  std::to_string(offp[b]) + " < offsets[" + std::to_string(b - 1) + "] = " +
                                  std::to_string(offp[b - 1]));
        FloatArray out({bags, dim});
        const int64_t* ip = ids.data();
        const float* tp = table.data();
        float* op = out.mutable_data();
        {
          py::gil_scoped_release release;
          embedding_bag(ip, n, offp, bags, tp, dim, mode, op);
        }
        return out;
      },
      py::arg("ids"), py::arg("offsets"), py::arg("table"), py::arg("mode") = "mean",
      "Pooled lookups as torch.nn.functional.embedding_bag: bag b is ids[offsets[b]:offsets[b+1]] (the last runs "
      "to the end); 'sum' or 'mean'; an empty bag gives zeros.");
}

}  // namespace cpuformer::bind
