using System.Diagnostics;
using System.Reflection;
using TorchSharp;
using static TorchSharp.torch;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Llm.Kernels;
using Microsoft.ML.Cora.Runtime;

namespace Cora.Cli;

/// <summary>
/// What <c>cora doctor</c> prints: versions, where libtorch came from, CUDA and GPUs, threads, and a short matmul rate
/// per device. The first thing to run when something is off, and the first lines of every GPU report.
/// </summary>
public static class Doctor
{
    public sealed record Check(string Name, string Value);

    /// <param name="matmulSeconds">Time spent measuring each device's matmul rate (0 skips the measurement).</param>
    /// <param name="measureChoices">Time the candidates of the CPU-dependent switches (<see cref="CpuChoices"/>) and print the decisions.</param>
    public static IReadOnlyList<Check> Run(double matmulSeconds = CoraDefaults.DoctorMatmulSeconds, bool measureChoices = true)
    {
        var list = new List<Check>
        {
            new("cora", Version(typeof(Doctor).Assembly)),
            new(".net", Environment.Version.ToString() + " (" + System.Runtime.InteropServices.RuntimeInformation.RuntimeIdentifier + ")"),
            new("torchsharp", Version(typeof(torch).Assembly)),
            new(LibTorchRuntime.EnvironmentVariable, Environment.GetEnvironmentVariable(LibTorchRuntime.EnvironmentVariable) is { Length: > 0 } v ? v : "(unset: libtorch bundled with the build)"),
        };
        try { LibTorchRuntime.EnsureLoaded(); }
        catch (Exception e) { list.Add(new("libtorch", "NOT LOADED: " + e.Message)); return list; }
        try
        {
            using (torch.zeros(1)) { }   // starts TorchSharp's native side
            list.Add(new("libtorch", LibTorchRuntime.LoadedFrom() ?? "(loaded; location unknown)"));
            list.Add(new("threads", $"{torch.get_num_threads()} intra-op ({Environment.ProcessorCount} logical CPUs)"));
            list.Add(new("openmp spin", OpenMpSpin.NativeValue("GOMP_SPINCOUNT") is { } spin
                ? $"GOMP_SPINCOUNT {spin} ({(OpenMpSpin.Applied ? "set by Cora" : "set before Cora started")})"
                : OpenMpSpin.NativeValue("OMP_WAIT_POLICY") is { } policy ? $"OMP_WAIT_POLICY {policy} (yours)" : "libgomp's default"));
            list.Add(new("cpu", $"{MachineInfo.CpuModelName() ?? "(model unknown)"}{(MachineInfo.CpuSignature() is { } sig ? $" ({sig})" : "")}"));
            list.Add(new("cpu bf16 products", CoraDevice.CpuHasNativeBf16
                ? "reported native (avx512_bf16 or amx_bf16); whether they are faster is measured below"
                : "not reported native; measured below"));
            if (measureChoices)
            {
                // The decisions Cora makes by timing (once per process): CoRA's default generator, and stories260K's heads.
                list.Add(new(CpuChoices.GeneratorDtypeSwitch, CpuChoices.GeneratorDtype(CoraDefaults.GeneratorHidden, CoraDefaults.GeneratorFeedForward).ToString()));
                list.Add(new(CpuChoices.AttentionKernelSwitch + " (8 heads of 8, 4 kv)", AttentionKernelChoice.For(8, 4, 8).ToString()));
                list.Add(new(CpuChoices.ScoringStreamsSwitch + " (width 64)", CpuChoices.ScoringStreams(64).ToString()));
            }
            bool cuda = torch.cuda.is_available();
            list.Add(new("cuda available", cuda ? $"yes, {torch.cuda.device_count()} device(s)" : "no"));
            if (cuda)
                for (int i = 0; i < torch.cuda.device_count(); i++)
                    list.Add(new($"cuda:{i}", GpuDescription(i)));
            if (matmulSeconds > 0)
            {
                list.Add(new("matmul cpu fp32", $"{MachineInfo.MatmulGflops(torch.CPU, ScalarType.Float32, 1024, matmulSeconds):F1} GFLOP/s (1024^3)"));
                list.Add(new("matmul cpu bf16", $"{MachineInfo.MatmulGflops(torch.CPU, ScalarType.BFloat16, 1024, matmulSeconds):F1} GFLOP/s (1024^3)"));
                if (cuda)
                {
                    list.Add(new("matmul cuda fp32", $"{MachineInfo.MatmulGflops(torch.CUDA, ScalarType.Float32, 8192, matmulSeconds):F1} GFLOP/s (8192^3)"));
                    list.Add(new("matmul cuda bf16", $"{MachineInfo.MatmulGflops(torch.CUDA, ScalarType.BFloat16, 8192, matmulSeconds):F1} GFLOP/s (8192^3)"));
                }
            }
        }
        catch (Exception e) { list.Add(new("error", e.Message.Split('\n')[0])); }
        return list;
    }

    private static string Version(Assembly a) =>
        a.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion.Split('+')[0] ?? a.GetName().Version?.ToString() ?? "?";

    private static string GpuDescription(int index)
    {
        // Name and memory come from nvidia-smi when present (TorchSharp 0.107 exposes neither).
        try
        {
            var psi = new ProcessStartInfo("nvidia-smi", $"--query-gpu=name,memory.total,driver_version --format=csv,noheader -i {index}")
            { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            string line = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit(5000);
            if (p.ExitCode == 0 && line.Length > 0) return line;
        }
        catch (System.ComponentModel.Win32Exception) { }
        return "present (nvidia-smi not found: name and memory unknown)";
    }

}
