using System.Runtime.InteropServices;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>Device and dtype choices, parsed in one place for the library, ML.NET options and the CLI.</summary>
public static class CoraDevice
{
    /// <summary>Accepted device values, for help text and errors.</summary>
    public const string DeviceChoices = "cpu, cuda, cuda:N or auto";
    /// <summary>Accepted LLM dtype values.</summary>
    public const string DtypeChoices = "auto, bf16, fp16 or fp32";
    /// <summary>Accepted values for the query generator's matrix products.</summary>
    public const string GeneratorDtypeChoices = "auto, bf16 or fp32";

    /// <summary>Checks a device value without touching libtorch (for validation before any work starts).</summary>
    public static string? DeviceError(string? spec)
    {
        var s = Normalise(spec);
        if (s is "cpu" or "auto" or "cuda") return null;
        if (s.StartsWith("cuda:", StringComparison.Ordinal) && int.TryParse(s[5..], out int n) && n >= 0) return null;
        return $"unknown device '{spec}'; use {DeviceChoices}";
    }

    /// <summary>Checks an LLM dtype value.</summary>
    public static string? DtypeError(string? spec) =>
        Normalise(spec, "auto") is "auto" or "bf16" or "bfloat16" or "fp16" or "float16" or "half" or "fp32" or "float32" ? null
        : $"unknown LLM dtype '{spec}'; use {DtypeChoices}";

    /// <summary>Checks a generator dtype value (<see cref="ResolveGeneratorDtype"/>).</summary>
    public static string? GeneratorDtypeError(string? spec) =>
        Normalise(spec, "auto") is "auto" or "bf16" or "bfloat16" or "fp32" or "float32" ? null
        : $"unknown generator dtype '{spec}'; use {GeneratorDtypeChoices}";

    /// <summary>
    /// dtype of the query generator's matrix products on <paramref name="device"/>: "auto" on a CPU is whichever of bf16 and fp32
    /// this CPU runs faster, timed once per process on one of the generator's layers (<see cref="CpuChoices.GeneratorDtype"/>:
    /// bf16 is faster on CPUs with fast bf16 matrix units and slower on others that also report avx512_bf16); on a GPU it is fp32
    /// (the generator is a small share of a large LLM's step). Its weights, norms and the optimiser stay fp32 either way.
    /// </summary>
    /// <param name="hidden">the generator's width (the timed layer's input)</param>
    /// <param name="feedForward">the generator's feed-forward width (the timed layer's output)</param>
    public static ScalarType ResolveGeneratorDtype(string? spec, Device device, int hidden = CoraDefaults.GeneratorHidden, int feedForward = CoraDefaults.GeneratorFeedForward)
    {
        if (GeneratorDtypeError(spec) is { } error) throw Refusal(error);
        return Normalise(spec, "auto") switch
        {
            "bf16" or "bfloat16" => ScalarType.BFloat16,
            "fp32" or "float32" => ScalarType.Float32,
            _ => device.type == DeviceType.CPU && CpuChoices.GeneratorDtype(hidden, feedForward).Chosen == "bf16" ? ScalarType.BFloat16 : ScalarType.Float32,
        };
    }

    /// <summary>Whether this machine's CPU reports native bf16 products (AVX512-BF16 or AMX-BF16, from /proc/cpuinfo; false elsewhere).
    /// Informational (<c>cora doctor</c>): a flag says nothing about speed, so no choice is made from it.</summary>
    public static bool CpuHasNativeBf16 => NativeBf16.Value;

    private static readonly Lazy<bool> NativeBf16 = new(() => CpuFlagsHaveBf16(ReadCpuFlags()));

    /// <summary>Whether a /proc/cpuinfo "flags" line names a native bf16 product (avx512_bf16 or amx_bf16).</summary>
    public static bool CpuFlagsHaveBf16(string? flagsLine) =>
        flagsLine is not null && flagsLine.Split(new[] { ' ', '\t', ':' }, StringSplitOptions.RemoveEmptyEntries).Any(f => f is "avx512_bf16" or "amx_bf16");

    private static string? ReadCpuFlags() => MachineInfo.CpuInfoLine("flags");

    /// <summary>The exception for a value one of the *Error checks refused: its text as a sentence.</summary>
    internal static ArgumentException Refusal(string error, string? paramName = null) => new(char.ToUpperInvariant(error[0]) + error[1..] + ".", paramName);

    private static string Normalise(string? spec, string empty = "cpu") => string.IsNullOrWhiteSpace(spec) ? empty : spec.Trim().ToLowerInvariant();

    /// <summary>Parses "cpu", "cuda", "cuda:N" or "auto" (CUDA when available, else CPU).</summary>
    public static Device Resolve(string? spec)
    {
        if (DeviceError(spec) is { } error) throw Refusal(error);
        LibTorchRuntime.EnsureLoaded();
        var s = Normalise(spec);
        if (s == "cpu") return torch.CPU;
        if (s == "auto") return torch.cuda.is_available() ? torch.CUDA : torch.CPU;
        if (!torch.cuda.is_available())
            throw new InvalidOperationException($"Device '{s}' was requested but CUDA is not available (libtorch from {LibTorchRuntime.LoadedFrom() ?? "the build output"} has no CUDA, or no GPU is visible). Point {LibTorchRuntime.EnvironmentVariable} at a CUDA libtorch (an installed PyTorch's torch/lib) with a build made with -p:CoraLibTorchPackage=none, or use device 'cpu'. 'cora doctor' shows what was found.");
        var d = torch.device(s);
        if (d.index >= torch.cuda.device_count())
            throw new InvalidOperationException($"Device '{s}' was requested but only {torch.cuda.device_count()} CUDA device(s) are visible.");
        return d;
    }

    /// <summary>The frozen LLM's dtype: "auto" is bf16 on CUDA and fp32 on the CPU.</summary>
    public static ScalarType ResolveDtype(string? spec, Device device)
    {
        if (DtypeError(spec) is { } error) throw Refusal(error);
        return Normalise(spec, "auto") switch
        {
            "bf16" or "bfloat16" => ScalarType.BFloat16,
            "fp16" or "float16" or "half" => ScalarType.Float16,
            "fp32" or "float32" => ScalarType.Float32,
            _ => device.type == DeviceType.CUDA ? ScalarType.BFloat16 : ScalarType.Float32,
        };
    }

    private static bool _interopSet;
    private static int _threads;

    /// <summary>
    /// libtorch's CPU thread count for this process: what <see cref="SetThreads"/> last set, else libtorch's default as the first
    /// caller saw it. Decisions made by timing, and the thread count scoring pins, are keyed to this one number, not to the calling
    /// thread's: with libgomp, a count set on any thread other than the first becomes the default of every thread created after, so
    /// a thread's own count depends on what ran before it.
    /// </summary>
    internal static int Threads
    {
        get
        {
            if (Volatile.Read(ref _threads) is > 0 and var t) return t;
            LibTorchRuntime.EnsureLoaded();
            Interlocked.CompareExchange(ref _threads, Math.Max(1, torch.get_num_threads()), 0);
            return _threads;
        }
    }

    /// <summary>Sets the calling thread's libtorch count back to <see cref="Threads"/> (a thread that ran with another count calls
    /// it when it is done, so that threads created later do not inherit that count).</summary>
    internal static void RestoreThreads()
    {
        int t = Threads;
        if (torch.get_num_threads() != t) torch.set_num_threads(t);
    }

    /// <summary>
    /// Intra-op (and, once per process, inter-op) threads libtorch uses on the CPU (0 = libtorch's default, one per core). Set it below the core count when several
    /// Cora processes share a machine: two processes each using every core slowed each other 2-4x on 2 cores.
    /// </summary>
    public static void SetThreads(int threads)
    {
        if (threads < 0) throw new ArgumentOutOfRangeException(nameof(threads), threads, "threads must be 0 (default) or more.");
        if (threads == 0) return;
        LibTorchRuntime.EnsureLoaded();
        torch.set_num_threads(threads);
        Volatile.Write(ref _threads, threads);
        // Inter-op threads (independent ops run side by side) can be set once per process, before any inter-op work.
        if (!_interopSet)
        {
            _interopSet = true;
            try { torch.set_num_interop_threads(threads); }
            catch (Exception e) when (e is ExternalException or InvalidOperationException) { }
        }
    }

    /// <summary>Short name of a dtype as the options spell it.</summary>
    public static string DtypeName(ScalarType t) => t switch
    {
        ScalarType.BFloat16 => "bf16", ScalarType.Float16 => "fp16", ScalarType.Float32 => "fp32", ScalarType.Float64 => "fp64", _ => t.ToString(),
    };

    /// <summary>
    /// While alive, new tensors and modules are created on <paramref name="device"/> in <paramref name="dtype"/>: modules are
    /// built where they will run, in the dtype they will keep (a 7B model in bf16 on a GPU never exists in fp32 on the host).
    /// The defaults are process-wide, so scopes on different threads run one at a time; dispose on the thread that created it.
    /// </summary>
    public static IDisposable BuildScope(Device? device, ScalarType? dtype) => new DefaultsScope(device, dtype);

    // libtorch's defaults are process-wide: scopes on different threads take turns (a scope is re-entrant on its own thread).
    private static readonly object BuildGate = new();

    private sealed class DefaultsScope : IDisposable
    {
        private readonly ScalarType _dtype;
        private readonly Device _device;
        private bool _disposed;
        public DefaultsScope(Device? device, ScalarType? dtype)
        {
            Monitor.Enter(BuildGate);
            _dtype = torch.get_default_dtype();
            _device = torch.get_default_device();
            if (dtype is { } t) torch.set_default_dtype(t);
            if (device is not null) torch.set_default_device(device);
        }
        public void Dispose()
        {
            if (_disposed) return;
            _disposed = true;
            torch.set_default_dtype(_dtype);
            torch.set_default_device(_device);
            Monitor.Exit(BuildGate);
        }
    }
}
