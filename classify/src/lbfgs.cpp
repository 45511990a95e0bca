// L-BFGS (see lbfgs.hpp).
#include "tl/lbfgs.hpp"

#include <algorithm>
#include <cmath>
#include <deque>

#include <fmt/format.h>

#include "tl/error.hpp"

namespace tl {

std::string_view to_string(LbfgsStop s) {
  switch (s) {
    case LbfgsStop::gradient:
      return "gradient below tolerance";
    case LbfgsStop::function:
      return "objective no longer decreasing";
    case LbfgsStop::iterations:
      return "iteration limit";
    case LbfgsStop::line_search:
      return "line search found no decrease";
    case LbfgsStop::stopped:
      return "stopped";
  }
  return "?";
}

namespace {

double dot(std::span<const double> a, std::span<const double> b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

double max_abs(std::span<const double> a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::abs(v));
  return m;
}

struct Pair {
  std::vector<double> s, y;  // x_{k+1} - x_k, g_{k+1} - g_k
  double rho = 0;            // 1 / (y . s)
};

// d = -H g by the two-loop recursion (Nocedal & Wright, algorithm 7.4), H0 = gamma I.
void direction(const std::deque<Pair>& pairs, std::span<const double> g, std::vector<double>& d) {
  d.assign(g.begin(), g.end());
  std::vector<double> alpha(pairs.size());
  for (size_t k = pairs.size(); k-- > 0;) {
    alpha[k] = pairs[k].rho * dot(pairs[k].s, d);
    for (size_t i = 0; i < d.size(); ++i) d[i] -= alpha[k] * pairs[k].y[i];
  }
  const double gamma =
      pairs.empty() ? 1.0
                    : dot(pairs.back().s, pairs.back().y) / dot(pairs.back().y, pairs.back().y);
  for (double& v : d) v *= gamma;
  for (size_t k = 0; k < pairs.size(); ++k) {
    const double beta = pairs[k].rho * dot(pairs[k].y, d);
    for (size_t i = 0; i < d.size(); ++i) d[i] += (alpha[k] - beta) * pairs[k].s[i];
  }
  for (double& v : d) v = -v;
}

}  // namespace

LbfgsResult minimize_lbfgs(std::vector<double>& x, const LbfgsObjective& f,
                           const LbfgsOptions& opt) {
  const size_t n = x.size();
  std::vector<double> g(n), d(n), x_new(n), g_new(n);
  LbfgsResult r;
  r.f = f(x, g);
  r.evaluations = 1;
  if (!std::isfinite(r.f))
    throw Error(fmt::format("L-BFGS: the objective is {} at the start", r.f));
  r.grad_max = max_abs(g);
  std::deque<Pair> pairs;
  while (true) {
    if (r.grad_max <= opt.gtol) {
      r.stop = LbfgsStop::gradient;
      return r;
    }
    if (r.iterations >= opt.max_iterations) {
      r.stop = LbfgsStop::iterations;
      return r;
    }
    if (opt.stop && opt.stop->load()) {
      r.stop = LbfgsStop::stopped;
      return r;
    }
    direction(pairs, g, d);
    double slope = dot(g, d);
    if (!(slope < 0)) {  // not a descent direction (rounding): restart from steepest descent
      pairs.clear();
      for (size_t i = 0; i < n; ++i) d[i] = -g[i];
      slope = dot(g, d);
    }
    // First step: a unit move along -g scaled to length 1; later the quasi-Newton step 1.
    double step = pairs.empty() && r.iterations == 0 ? 1.0 / std::max(1.0, std::sqrt(-slope)) : 1.0;
    double f_new = 0;
    bool accepted = false;
    for (int ls = 0; ls < opt.max_line_search; ++ls, step *= 0.5) {
      for (size_t i = 0; i < n; ++i) x_new[i] = x[i] + step * d[i];
      f_new = f(x_new, g_new);
      ++r.evaluations;
      if (std::isfinite(f_new) && f_new <= r.f + 1e-4 * step * slope) {  // Armijo
        accepted = true;
        break;
      }
    }
    if (!accepted) {
      r.stop = LbfgsStop::line_search;
      return r;
    }
    Pair p{std::vector<double>(n), std::vector<double>(n), 0};
    for (size_t i = 0; i < n; ++i) p.s[i] = x_new[i] - x[i], p.y[i] = g_new[i] - g[i];
    const double ys = dot(p.y, p.s);
    if (ys > 1e-10 * dot(p.y, p.y)) {  // keep only pairs of positive curvature
      p.rho = 1.0 / ys;
      pairs.push_back(std::move(p));
      if (static_cast<int>(pairs.size()) > opt.memory) pairs.pop_front();
    }
    const double f_old = r.f;
    x.swap(x_new);
    g.swap(g_new);
    r.f = f_new;
    r.grad_max = max_abs(g);
    ++r.iterations;
    if ((f_old - r.f) <= opt.ftol * std::max({std::abs(f_old), std::abs(r.f), 1.0})) {
      r.stop = r.grad_max <= opt.gtol ? LbfgsStop::gradient : LbfgsStop::function;
      return r;
    }
  }
}

}  // namespace tl
