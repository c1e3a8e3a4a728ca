using BenchmarkDotNet.Attributes;
using Microsoft.ML.Cora.Llm;
using TorchSharp;
using static TorchSharp.torch;

namespace Cora.Benchmarks;

/// <summary>
/// Forward throughput of the frozen LLM on the CPU, batch 8 x 256 tokens, last-token logits for two ids
/// (what Cora scores). Tokens/s = 8 * 256 / mean time.
/// </summary>
[MemoryDiagnoser]
public class LlmForwardBenchmark
{
    private LlamaForCausalLM _model = null!;
    private Tensor _ids = null!, _mask = null!;

    [Params("stories260K", "smollm2-135M-random")]
    public string Model { get; set; } = "stories260K";

    [GlobalSetup]
    public void Setup()
    {
        torch.set_num_threads(Environment.ProcessorCount);
        _model = Model == "stories260K"
            ? CheckpointLoader.LoadLlama2c(Paths.Stories260K)
            : LlamaForCausalLM.CreateRandom(LlamaConfig.SmolLm2_135M(), seed: 1);
        _model.eval();
        var g = new torch.Generator(1);
        _ids = torch.randint(3, _model.Config.VocabSize, new long[] { 8, 256 }, generator: g);
        _mask = torch.ones(8, 256, dtype: ScalarType.Int64);
    }

    [Benchmark(Description = "forward 8x256, Yes/No logits")]
    public float Forward()
    {
        using var _ = torch.no_grad();
        using var scope = torch.NewDisposeScope();
        var logits = _model.LastTokenLogits(_model.Embed(_ids), _mask, null, new long[] { 3, 4 });
        return logits[0, 0].item<float>();
    }
}

public static class Paths
{
    public static string Stories260K
    {
        get
        {
            var env = Environment.GetEnvironmentVariable("CORA_SHARED");
            var d = new DirectoryInfo(AppContext.BaseDirectory);
            while (d is not null && !File.Exists(Path.Combine(d.FullName, "Cora.sln"))) d = d.Parent;
            string shared = !string.IsNullOrEmpty(env) ? env : Path.Combine(d?.FullName ?? ".", "..", "shared");
            string p = Path.Combine(shared, "models", "stories260K", "stories260K.bin");
            if (!File.Exists(p)) throw new FileNotFoundException($"stories260K not found at {p}; set CORA_SHARED.");
            return p;
        }
    }
}
