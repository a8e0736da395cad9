// Analytic references for the issue-3 scenario tests (REFERENCE.md "Waiting
// times" and "Swapping and purification"): the waiting time of a chain of
// links that all restart after every end-to-end pair and swap as soon as
// possible, and the fidelity of swapped Werner pairs.
//
// These are written from the reference formulas only; nothing here reads the
// protocol code, so a test comparing the emulation with them is a check of
// the protocol, not of itself.
#ifndef QNET_EMULATOR_SCENARIOS_ANALYTIC_H_
#define QNET_EMULATOR_SCENARIOS_ANALYTIC_H_

#include <vector>

namespace qnet::scenarios {

// w = (4F - 1) / 3 and back (REFERENCE.md "Memory decoherence").
double WernerParameter(double fidelity);
double WernerFidelity(double w);

// End-to-end fidelity of a chain of Werner links swapped with perfect Bell
// measurements and corrected: (1 + 3 prod w_i) / 4.
double ChainWernerFidelity(const std::vector<double>& link_fidelities);

// E[max_i N_i] for independent N_i ~ Geometric(p_i) on {1, 2, ...}: the mean
// number of attempt cycles until every link of a chain holds a pair when all
// start together (swap as soon as possible, deterministic swaps). Inclusion-
// exclusion over the non-empty subsets S of links:
//   sum_S (-1)^(|S|+1) / (1 - prod_{i in S} (1 - p_i)).
// For equal p this is REFERENCE.md's sum_k (-1)^(k+1) C(n,k) / (1 - (1-p)^k).
// Exact up to rounding for up to ~20 links (2^n terms).
double ExpectedMaxAttempts(const std::vector<double>& p);

// The binomial form for n links of equal p (REFERENCE.md, written as there).
double ExpectedMaxAttemptsEqual(int n, double p);

// Mean and variance of M = max_i N_i by summing the tail:
// E[M] = sum_{k>=1} P(M >= k), E[M^2] = sum_{k>=1} (2k - 1) P(M >= k), with
// P(M >= k) = 1 - prod_i (1 - (1 - p_i)^(k-1)). Used for standard errors, and
// as an independent check of the inclusion-exclusion form.
struct Moments {
  double mean = 0;
  double variance = 0;
};
Moments MaxAttemptsMoments(const std::vector<double>& p);

}  // namespace qnet::scenarios

#endif  // QNET_EMULATOR_SCENARIOS_ANALYTIC_H_
