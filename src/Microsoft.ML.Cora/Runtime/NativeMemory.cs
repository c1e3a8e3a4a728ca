using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// Keeps the process's memory close to what the tensors need without paying for it in page faults. libtorch allocates CPU
/// tensors with glibc's malloc; glibc's dynamic mmap threshold rises to the largest block ever freed (up to 32 MiB), after which
/// multi-megabyte gradient and activation buffers come from per-thread heap arenas that are rarely returned to the system (a
/// CoRA run on 400 rows once peaked at 5.3 GiB resident for 1.4 GiB of live data). The threshold is therefore fixed, which also
/// stops its growth: blocks above it are mapped and unmapped on free. It is 8 MiB, not lower: every training step allocates the
/// generator's gradients afresh (42M parameters in blocks of up to 4 MiB); mapped blocks come back as new zeroed pages, one page
/// fault per 4 KiB, ~170 MB a step. At 1 MiB a CoRA run on 1,600 rows trained at 28.6 rows/s and peaked at 1.17 GiB; at 8 MiB
/// 31.6 rows/s and 1.19 GiB, the same AUC. It applies once, when Cora is first used, on Linux with glibc, and not when the user has
/// set MALLOC_MMAP_THRESHOLD_ themselves.
/// </summary>
internal static class NativeMemory
{
    private const int M_MMAP_THRESHOLD = -3;
    public const int MmapThresholdBytes = 8 << 20;

    [DllImport("libc", EntryPoint = "mallopt")]
    private static extern int Mallopt(int param, int value);

    /// <summary>True when the threshold was set by Cora in this process.</summary>
    public static bool Applied { get; private set; }

#pragma warning disable CA2255 // a module initializer is the one place that runs before any tensor is allocated by Cora
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void Apply()
    {
        if (!OperatingSystem.IsLinux() || Environment.GetEnvironmentVariable("MALLOC_MMAP_THRESHOLD_") is not null) return;
        try { Applied = Mallopt(M_MMAP_THRESHOLD, MmapThresholdBytes) == 1; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { }   // not glibc (e.g. musl)
    }
}
