using System.Diagnostics;
using System.Reflection;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Runtime;

/// <summary>What this machine is and how fast it multiplies: the CPU model, a matmul rate, waiting for a device.</summary>
internal static class MachineInfo
{
    /// <summary>The CPU's model name (/proc/cpuinfo's "model name", as lscpu prints it), or null where it cannot be read.</summary>
    public static string? CpuModelName() => CpuInfoLine("model name") is { } line ? line[(line.IndexOf(':') + 1)..].Trim() : null;

    /// <summary>The CPU's family, model and stepping numbers ("family 6 model 106 stepping 6"), or null where they cannot be read.
    /// Different CPUs can share one model name (a cloud's "Intel(R) Xeon(R) Processor @ 2.80GHz" has been an Ice Lake and an Emerald
    /// Rapids); these numbers tell them apart.</summary>
    public static string? CpuSignature()
    {
        string? Field(string key) => CpuInfoField(key);
        return Field("cpu family") is { } f && Field("model") is { } m ? $"family {f} model {m} stepping {Field("stepping") ?? "?"}" : null;
    }

    /// <summary>What a decision timed on this CPU is valid for: its model name, <see cref="CpuSignature"/> and a hash of its feature
    /// flags (a hypervisor can hide some from one machine of a given model and not from another).</summary>
    internal static string CpuIdentity()
    {
        string flags = CpuInfoField("flags") ?? "";
        string hash = Convert.ToHexString(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.ASCII.GetBytes(flags)))[..8].ToLowerInvariant();
        return $"{CpuModelName() ?? "unknown cpu"} ({CpuSignature() ?? "no signature"}, flags {hash})";
    }

    /// <summary>The value of the first /proc/cpuinfo field named exactly <paramref name="key"/>, or null.</summary>
    private static string? CpuInfoField(string key)
    {
        try
        {
            if (!OperatingSystem.IsLinux() || !File.Exists("/proc/cpuinfo")) return null;
            foreach (var line in File.ReadLines("/proc/cpuinfo"))
            {
                int colon = line.IndexOf(':');
                if (colon > 0 && line[..colon].Trim() == key) return line[(colon + 1)..].Trim();
            }
            return null;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

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
