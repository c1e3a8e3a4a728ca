using Microsoft.ML.Cora.Formats;
using System.CommandLine;
using System.Text.Json;
using System.Text.Json.Nodes;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Runtime;
using TorchSharp;

namespace Cora.Cli;

/// <summary><c>cora bench forward|train-step|golden</c>: measured figures with the command that produced them.</summary>
internal static class BenchCommand
{
    public static Command Create(CliContext c)
    {
        var cmd = new Command("bench", "Measure forward throughput, a CoRA training step, or CPU-vs-device logits of an LLM.");
        cmd.Subcommands.Add(Forward(c, "forward", "Forward of a random LLaMA of a published shape: median time, tokens/s, TFLOP/s."));
        cmd.Subcommands.Add(Forward(c, "train-step", "A CoRA training step (generator + collaborative weights on a frozen random LLaMA): time, tokens/s, TFLOP/s, peak memory."));
        cmd.Subcommands.Add(Golden(c));
        return cmd;
    }

    private static Command Forward(CliContext c, string name, string description)
    {
        var shape = new Option<string>("--shape") { Description = $"LLM shape: {string.Join(", ", LlmShapes.ByName.Keys)}.", DefaultValueFactory = _ => "tiny" };
        shape.Validators.Add(r => { if (!LlmShapes.ByName.ContainsKey(r.GetValueOrDefault<string>() ?? "")) r.AddError($"--shape: use {string.Join(", ", LlmShapes.ByName.Keys)}."); });
        var batch = Positive("--batch", name == "forward" ? 8 : 8, "Rows per step.");
        var tokens = Positive("--tokens", name == "forward" ? 256 : 200, "Tokens per row.");
        var repeats = Positive("--repeats", Microsoft.ML.Cora.CoraDefaults.BenchRepeats, "Timed repeats (after one warm-up).");
        var json = new Option<string?>("--json") { Description = "Also write the result as one JSON object." };
        var cmd = new Command(name, description) { shape, batch, tokens, repeats, json };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var (deviceSpec, dtypeSpec) = dev.Get(p);
            var device = CoraDevice.Resolve(deviceSpec);
            var dtype = CoraDevice.ResolveDtype(dtypeSpec, device);
            var config = LlmShapes.Get(p.GetValue(shape)!);
            int b = p.GetValue(batch), t = p.GetValue(tokens);
            var r = name == "forward"
                ? Bench.Forward(config, p.GetValue(shape)!, device, dtype, b, t, p.GetValue(repeats))
                : Bench.CoraTrainStep(config, p.GetValue(shape)!, device, dtype, b, t, repeats: p.GetValue(repeats));
            c.Out.WriteLine($"{r.What} on {r.Device} in {r.Dtype}: median {r.MedianSeconds * 1000:F1} ms (min {r.MinSeconds * 1000:F1}, max {r.MaxSeconds * 1000:F1}, n={r.Repeats}), {r.ItemsPerSecond:F0} {r.ItemUnit}, {r.TflopsPerSecond:F2} TFLOP/s, peak device memory {r.PeakDeviceMiB:F0} MiB, peak host working set {r.PeakHostMiB:F0} MiB");
            if (name == "train-step")
            {
                double paper = Bench.PaperPeakMiB(config, dtype, b, t, r.TrainableParams);
                c.Out.WriteLine($"  on paper (bf16/fp16 weights + fp32 generator with AdamW + saved activations): {paper:F0} MiB; measured / paper = {(r.PeakDeviceMiB > 0 ? (r.PeakDeviceMiB / paper).ToString("F2") : "n/a (no CUDA)")}");
            }
            if (p.GetValue(json) is { } j)
            {
                var o = JsonSerializer.SerializeToNode(r)!.AsObject();
                AtomicFile.Write(j, s => s.Write(System.Text.Encoding.UTF8.GetBytes(o.ToJsonString(new JsonSerializerOptions { WriteIndented = true }))));
            }
            return 0;
        });
        return cmd;
    }


    private static Command Golden(CliContext c)
    {
        var llm = new Option<string>("--llm") { Description = "Hugging Face folder or llama2.c .bin.", Required = true };
        var text = new Option<string>("--text") { Description = "Prompt whose logits are compared.", DefaultValueFactory = _ => "Once upon a time, there was a little girl named Lily." };
        var cmd = new Command("golden", "Logits of an LLM on the CPU in fp32 versus on --device in fp32 and in --llm-dtype: max |difference|.") { llm, text };
        var dev = DeviceOptions.Create(); dev.AddTo(cmd);
        cmd.SetAction(p =>
        {
            var (deviceSpec, dtypeSpec) = dev.Get(p);
            var device = CoraDevice.Resolve(deviceSpec);
            var dtype = CoraDevice.ResolveDtype(dtypeSpec, device);
            using var _ = torch.no_grad();
            using var cpu = LanguageModel.Load(p.GetValue(llm)!, device: "cpu", dtype: "fp32");
            var ids = cpu.Tokenizer.Encode(p.GetValue(text)!, addBos: true).Select(i => (long)i).ToArray();
            using var reference = cpu.Model.Logits(torch.tensor(ids).unsqueeze(0));
            foreach (var dt in new[] { torch.ScalarType.Float32, dtype }.Distinct())
            {
                using var other = LanguageModel.Load(p.GetValue(llm)!, device: deviceSpec, dtype: CoraDevice.DtypeName(dt));
                using var logits = other.Model.Logits(torch.tensor(ids, device: device).unsqueeze(0)).cpu().to(torch.ScalarType.Float32);
                double diff = logits.sub(reference).abs().max().item<float>();
                double scale = reference.abs().max().item<float>();
                c.Out.WriteLine($"golden {Path.GetFileName(p.GetValue(llm)!)} {ids.Length} tokens: {device} {CoraDevice.DtypeName(dt)} vs cpu fp32 max |diff| {diff:E2} (max |logit| {scale:F2})");
            }
            return 0;
        });
        return cmd;
    }

    private static Option<int> Positive(string name, int dflt, string desc)
    {
        var o = new Option<int>(name) { Description = desc, DefaultValueFactory = _ => dflt };
        o.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) r.AddError($"{name} must be at least 1."); });
        return o;
    }
}
