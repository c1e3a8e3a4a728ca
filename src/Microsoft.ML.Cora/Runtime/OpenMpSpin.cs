using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// Shortens how long libtorch's OpenMP workers spin after each parallel operation before they sleep: <c>GOMP_SPINCOUNT</c> =
/// <see cref="SpinCount"/> instead of libgomp's 300,000 (~1-4 ms on the project's machines).
/// </summary>
/// <remarks>
/// Cora's own SIMD kernels (<see cref="Llm.Kernels.NarrowHeadAttention"/>, <see cref="Llm.Kernels.FastDropout"/>, the fused
/// <see cref="Training.AdamW"/>) run on .NET threads right after libtorch operations. With the default spin, the libgomp worker
/// that has just finished kept one of the two cores busy waiting, and the kernels ran at single-thread speed: one 4 x 289-token
/// attention group took 2.5 ms forward and 3.8 ms backward, against 1.3-1.5 and 2.1-2.2 ms with a short spin (and 2.4 / 3.9 ms on
/// one thread). No spin at all (0) makes libtorch pay a wake-up between its own back-to-back operations: training steps slowed
/// (508 / 570 against 445 / 459 ms). 30,000 keeps the workers awake across the short gaps between consecutive libtorch operations
/// and frees the core within a fraction of a millisecond: a training step took 362 ms against 404 ms with the default (median of
/// six alternating processes each, <c>cora bench train-step --repeats 20</c>). libgomp reads the variable once, when libtorch is
/// loaded, so this runs when Cora's assembly is first used; it leaves a value the user set (GOMP_SPINCOUNT or OMP_WAIT_POLICY)
/// alone, and it has no effect when libtorch was already loaded by other code.
/// </remarks>
internal static class OpenMpSpin
{
    /// <summary>The spin count Cora sets.</summary>
    public const string SpinCount = "30000";

    /// <summary>True when Cora set GOMP_SPINCOUNT in this process.</summary>
    public static bool Applied { get; private set; }

    [DllImport("libc", EntryPoint = "setenv")]
    private static extern int SetEnv(string name, string value, int overwrite);

    [DllImport("libc", EntryPoint = "getenv")]
    private static extern IntPtr GetEnv(string name);

    /// <summary>The process environment's value as native code sees it (null when unset or not on Linux).</summary>
    public static string? NativeValue(string name)
    {
        if (!OperatingSystem.IsLinux()) return null;
        try { return Marshal.PtrToStringUTF8(GetEnv(name)); }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { return null; }
    }

#pragma warning disable CA2255 // a module initializer is the one place that runs before Cora loads libtorch
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Apply()
    {
        if (!OperatingSystem.IsLinux() || NativeValue("GOMP_SPINCOUNT") is not null || NativeValue("OMP_WAIT_POLICY") is not null) return;
        try { Applied = SetEnv("GOMP_SPINCOUNT", SpinCount, 0) == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }
    }
}
