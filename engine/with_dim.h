// Compile-time block sizes for the engine's per-point loops: the common ones unroll.
#pragma once

namespace pgkm {

// f.template operator()<Dim>() with Dim = dim for the block sizes configs use (4, 8, 16),
// else Dim = 0 (the loop reads the dimension at run time). The loops do the same
// operations in the same order either way, so the bits do not depend on which ran.
template <typename F>
decltype(auto) with_dim(int dim, const F& f) {
  switch (dim) {
    case 4:
      return f.template operator()<4>();
    case 8:
      return f.template operator()<8>();
    case 16:
      return f.template operator()<16>();
    default:
      return f.template operator()<0>();
  }
}

}  // namespace pgkm
