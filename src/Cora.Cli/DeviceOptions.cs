using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Cora;
using Microsoft.ML.Cora.Estimators;
using Microsoft.ML.Cora.Runtime;

namespace Cora.Cli;

/// <summary>--device, --llm-dtype and --generator-dtype, the same on every command that computes; checked before any work starts.</summary>
internal sealed record DeviceOptions(Option<string> Device, Option<string> Dtype, Option<string> GeneratorDtype, Option<int> Threads)
{
    /// <param name="generatorDtype">--generator-dtype's default (a command that must compute the same on every CPU pins fp32)</param>
    public static DeviceOptions Create(string generatorDtype = CoraDefaults.GeneratorDtype)
    {
        // Flags and help as the ML.NET options declare them (CoraTrainer.Options); the values are checked here, before any work.
        string Help(string property) => DeclaredOptions.Help(typeof(CoraTrainer.Options), property);
        var device = new Option<string>("--device") { Description = Help(nameof(CoraTrainer.Options.Device)), DefaultValueFactory = _ => CoraDefaults.Device };
        device.Validators.Add(r => { if (CoraDevice.DeviceError(r.GetValueOrDefault<string>()) is { } e) r.AddError("--device: " + e + "."); });
        var dtype = new Option<string>("--llm-dtype") { Description = Help(nameof(CoraTrainer.Options.LlmDtype)), DefaultValueFactory = _ => CoraDefaults.LlmDtype };
        dtype.Validators.Add(r => { if (CoraDevice.DtypeError(r.GetValueOrDefault<string>()) is { } e) r.AddError("--llm-dtype: " + e + "."); });
        var generator = new Option<string>("--generator-dtype") { Description = Help(nameof(CoraTrainer.Options.GeneratorDtype)), DefaultValueFactory = _ => generatorDtype };
        generator.Validators.Add(r => { if (CoraDevice.GeneratorDtypeError(r.GetValueOrDefault<string>()) is { } e) r.AddError("--generator-dtype: " + e + "."); });
        var threads = Cli.Int("--threads", 0, Help(nameof(CoraTrainer.Options.Threads)));
        return new(device, dtype, generator, threads);
    }
    public void AddTo(Command c) { c.Options.Add(Device); c.Options.Add(Dtype); c.Options.Add(GeneratorDtype); c.Options.Add(Threads); }
    /// <summary>The device and dtypes; applies --threads to the process on the way.</summary>
    public DeviceChoice Get(ParseResult p)
    {
        CoraDevice.SetThreads(p.GetValue(Threads));
        return new(p.GetValue(Device)!, p.GetValue(Dtype)!, p.GetValue(GeneratorDtype)!);
    }
}

/// <summary>What <see cref="DeviceOptions"/> parsed: device, LLM dtype and generator dtype (as given; resolved where used).</summary>
internal sealed record DeviceChoice(string Device, string Dtype, string GeneratorDtype)
{
    public void Deconstruct(out string device, out string dtype) { device = Device; dtype = Dtype; }

    /// <summary>The generator products' dtype on <paramref name="device"/> (auto resolved), e.g. "bf16".</summary>
    public string GeneratorDtypeName(TorchSharp.torch.Device device) => CoraDevice.DtypeName(CoraDevice.ResolveGeneratorDtype(GeneratorDtype, device));

    /// <summary>The line the computing commands print: what the generator's products run in, and the option that chose it
    /// (<paramref name="where"/> qualifies it, e.g. " on a GPU").</summary>
    public string GeneratorLine(TorchSharp.torch.Device device, string where = "") =>
        $"generator products: {GeneratorDtypeName(device)} (--generator-dtype {GeneratorDtype}{where})";
}
