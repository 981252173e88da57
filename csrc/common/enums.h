// Every enum the ops pass across languages as an integer, in one place. Python mirrors them
// in fastsnn/_enums.py (the ops, the Triton kernels and the option strings all read that
// module); tests/test_enums.py parses this file and fails when the two drift apart.
// Member order is the value order, and the lower-case member names are the option strings
// of the public functions (reset="hard", surrogate="rect", ...). The k<Enum>s counts bound
// the values the bindings accept (csrc/torch/checks.h enum_arg).
#pragma once

namespace fastsnn {

// mt_lif
// SubtractNext: snnTorch's subtraction, the threshold taken off the next step's charge.
enum class Reset : int { Hard = 0, Soft = 1, None = 2, SubtractNext = 3 };
// Atan and FastSigmoid take their peer's parameter (alpha, slope) in place of the width.
enum class Surrogate : int { Rect = 0, Triangle = 1, Sigmoid = 2, Atan = 3, FastSigmoid = 4 };
enum class Form : int { Stbp = 0, Plif = 1 };
// What the forward keeps for the backward (table in fastsnn/ops/mt_lif.py).
enum class Save : int { None = 0, Sg = 1, H = 2 };
constexpr int kResets = 4, kSurrogates = 5, kForms = 2, kSaves = 3;

// binary_conv2d: what the input values mean.
enum class BinaryActivation : int { Spike = 0, Sign = 1 };
constexpr int kBinaryActivations = 2;

// events_to_current
enum class EventSplit : int { Number = 0, Time = 1 };
enum class EventWeighting : int { Count = 0, Exp = 1 };
// Why an event is invalid, in the order the checks run on one event.
enum class EventFault : int { None = -1, X = 0, Y = 1, P = 2, Order = 3 };
constexpr int kEventFaultKinds = 4;

}  // namespace fastsnn
