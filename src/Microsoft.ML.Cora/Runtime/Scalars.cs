using System.Collections.Concurrent;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// Numbers passed to libtorch, kept alive while libtorch reads them.
/// </summary>
/// <remarks>
/// TorchSharp 0.107 converts a number argument (<c>x.mul(0.5)</c>, <c>x.pow(2)</c>) into a <see cref="Scalar"/> and passes only its
/// native handle to libtorch, without keeping the <see cref="Scalar"/> itself reachable during the call. A garbage collection at
/// that moment may finalise it and free the native value while libtorch still reads it: seen once at the end of a 250-step training
/// run as <c>INTERNAL ASSERT FAILED at "/pytorch/c10/core/Scalar.h"</c> in <c>THSTensor_pow_scalar</c>. Code that runs per batch takes
/// its constants from <see cref="Of(double)"/> (created once, reachable for the life of the process) and holds a per-step value in a
/// <c>using</c> variable (<see cref="Hold(double)"/>), which keeps it reachable until the end of its scope.
/// </remarks>
internal static class Scalars
{
    private static readonly ConcurrentDictionary<double, Scalar> Doubles = new();
    private static readonly ConcurrentDictionary<long, Scalar> Longs = new();

    /// <summary>A floating-point constant (a model's fixed scale, an epsilon); one object per value, never collected. Not for values
    /// that change every step (use <see cref="Hold(double)"/>).</summary>
    public static Scalar Of(double value) => Doubles.GetOrAdd(value, v => v.ToScalar());

    /// <summary>An integer constant, for integer tensors (a double would promote them to floating point).</summary>
    public static Scalar Of(long value) => Longs.GetOrAdd(value, v => v.ToScalar());

    /// <summary>1.0, also the explicit <c>alpha</c> of <c>add(tensor, alpha)</c>: TorchSharp's <c>add(tensor)</c> and <c>add(scalar)</c>
    /// pass a number they convert themselves, so hot paths call the two-argument form.</summary>
    public static Scalar One => Of(1.0);

    /// <summary>0, 1, ..., n - 1 as int64 (TorchSharp's <c>arange(n)</c> converts its bounds itself).</summary>
    public static Tensor Arange(long n, Device? device = null) => torch.arange(Of(0L), Of(n), Of(1L), ScalarType.Int64, device);

    /// <summary>A value for this call only: declare it with <c>using var</c>, so that it stays reachable until the scope ends.</summary>
    public static Scalar Hold(double value) => value.ToScalar();
}
