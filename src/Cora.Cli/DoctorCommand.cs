using System.CommandLine;
using Microsoft.ML.Cora.Runtime;

namespace Cora.Cli;

/// <summary><c>cora doctor</c>: versions, libtorch location, CUDA and GPUs, threads, matmul rate per device.</summary>
internal static class DoctorCommand
{
    public static Command Create(CliContext c)
    {
        var seconds = new Option<double>("--seconds") { Description = "Seconds spent measuring each device's matmul rate (0 skips it).", DefaultValueFactory = _ => Microsoft.ML.Cora.CoraDefaults.DoctorMatmulSeconds };
        seconds.Validators.Add(r => { if (r.Parsed(out double v) && !(v >= 0 && v <= 60)) r.AddError("--seconds must be between 0 and 60."); });
        var cmd = new Command("doctor", "Print Cora, TorchSharp, libtorch and .NET versions, where libtorch was loaded from, CUDA/GPUs, threads and matmul GFLOP/s.") { seconds };
        cmd.SetAction(p =>
        {
            var checks = Doctor.Run(p.GetValue(seconds));
            int width = checks.Max(x => x.Name.Length);
            foreach (var x in checks) c.Out.WriteLine($"{x.Name.PadRight(width)}  {x.Value}");
            return checks.Any(x => x.Name is "libtorch" && x.Value.StartsWith("NOT LOADED") || x.Name == "error") ? 1 : 0;
        });
        return cmd;
    }
}
