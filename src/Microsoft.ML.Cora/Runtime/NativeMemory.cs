using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>
/// Keeps the process's memory close to what the tensors need. libtorch allocates CPU tensors with glibc's malloc; glibc's
/// dynamic mmap threshold rises to the largest block ever freed (up to 32 MiB), after which multi-megabyte gradient and
/// activation buffers come from per-thread heap arenas that are rarely returned to the system. A CoRA run on 400 rows then
/// peaked at 5.3 GiB resident for 1.4 GiB of live data. Fixing the threshold at 1 MiB (blocks above it are mapped and
/// unmapped on free) removes that growth; it applies once, when Cora is first used, on Linux with glibc, and not when the
/// user has set MALLOC_MMAP_THRESHOLD_ themselves.
/// </summary>
public static class NativeMemory
{
    private const int M_MMAP_THRESHOLD = -3;
    public const int MmapThresholdBytes = 1 << 20;

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
