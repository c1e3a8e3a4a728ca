using System.Diagnostics;
using System.Reflection;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>What this machine is and how fast it multiplies: the CPU model, a matmul rate, waiting for a device.</summary>
public static class MachineInfo
{
    /// <summary>The CPU's model name (/proc/cpuinfo's "model name", as lscpu prints it), or null where it cannot be read.</summary>
    public static string? CpuModelName() => CpuInfoLine("model name") is { } line ? line[(line.IndexOf(':') + 1)..].Trim() : null;

    /// <summary>The first line of /proc/cpuinfo that starts with <paramref name="key"/>, or null (not Linux, unreadable).</summary>
    internal static string? CpuInfoLine(string key)
    {
        try
        {
            if (!OperatingSystem.IsLinux() || !File.Exists("/proc/cpuinfo")) return null;
            return File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    /// <summary>Achieved GFLOP/s of n x n x n matmuls on a device in a dtype, measured for about <paramref name="seconds"/>.</summary>
    public static double MatmulGflops(Device device, ScalarType dtype, int n, double seconds)
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var a = torch.randn(n, n, dtype: dtype, device: device);
        var b = torch.randn(n, n, dtype: dtype, device: device);
        torch.mm(a, b).Dispose();                       // warm-up
        Synchronize(device);
        var sw = Stopwatch.StartNew();
        int reps = 0;
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            torch.mm(a, b).Dispose();
            reps++;
            if (reps % 8 == 0) Synchronize(device);
        }
        Synchronize(device);
        return 2.0 * n * (double)n * n * reps / sw.Elapsed.TotalSeconds / 1e9;
    }

    /// <summary>Waits for queued GPU work (no-op on the CPU).</summary>
    public static void Synchronize(Device device)
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize(device);
    }
}
