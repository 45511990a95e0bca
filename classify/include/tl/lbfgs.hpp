// Limited-memory BFGS (Nocedal & Wright, Numerical Optimization, algorithms 7.4 and 7.5) for
// smooth convex objectives in double precision, with a backtracking line search on the Armijo
// condition. Stops like SciPy's L-BFGS-B as scikit-learn calls it: the largest gradient entry
// at most `gtol`, or a relative decrease of the objective at most `ftol`.
//
//   std::vector<double> x(n, 0.0);
//   tl::LbfgsResult r = tl::minimize_lbfgs(x, [](std::span<const double> x, std::span<double> g) {
//     double f = 0;
//     for (size_t i = 0; i < x.size(); ++i) f += (x[i] - 1) * (x[i] - 1), g[i] = 2 * (x[i] - 1);
//     return f;
//   });                                   // x = 1, r.stop == tl::LbfgsStop::gradient
#pragma once

#include <atomic>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

namespace tl {

struct LbfgsOptions {
  int memory = 10;                           // correction pairs kept (SciPy's maxcor)
  int max_iterations = 1000;                 // the CLIP paper's linear-probe setting
  double gtol = 1e-4;                        // scikit-learn's tol
  double ftol = 64 * 2.220446049250313e-16;  // scikit-learn's ftol: 64 machine epsilons
  int max_line_search = 50;                  // step halvings per iteration (scikit-learn's maxls)
  const std::atomic<bool>* stop = nullptr;   // checked between iterations
};

enum class LbfgsStop { gradient, function, iterations, line_search, stopped };
std::string_view to_string(LbfgsStop s);

struct LbfgsResult {
  double f = 0;         // the objective at x
  double grad_max = 0;  // max |g| at x
  int iterations = 0;
  int evaluations = 0;  // of the objective
  LbfgsStop stop = LbfgsStop::iterations;
  bool converged() const { return stop == LbfgsStop::gradient || stop == LbfgsStop::function; }
};

// f(x, g) returns the objective at x and writes its gradient to g (same size as x).
using LbfgsObjective = std::function<double(std::span<const double> x, std::span<double> g)>;

// Minimises f from x (updated in place). Throws Error when f is not finite at the start.
LbfgsResult minimize_lbfgs(std::vector<double>& x, const LbfgsObjective& f,
                           const LbfgsOptions& opt = {});

}  // namespace tl
