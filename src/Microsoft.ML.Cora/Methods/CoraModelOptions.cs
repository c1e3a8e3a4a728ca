using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Prompting;
using Microsoft.ML.Cora.Runtime;

namespace Microsoft.ML.Cora.Methods;

/// <summary>Model options. Defaults follow CoRA's public code (<see cref="CoraDefaults"/>); each says how to choose it.</summary>
public sealed record CoraModelOptions
{
    /// <summary>cora (default) or a baseline: mf, llm-lora (TALLRec), collm.</summary>
    public CoraMethod Method { get; set; } = CoraDefaults.Method;
    /// <summary>Rank r of the collaborative weights (16). Higher r = more capacity and a larger head (d_model * r outputs).</summary>
    [Option("--rank", "Rank r of the collaborative weights (keep alpha / r near 2).", Min = 1, Max = 1024)]
    public int Rank { get; set; } = CoraDefaults.Rank;
    /// <summary>alpha (32); the update is scaled by alpha / r (2 by default). Keep alpha / r near 2 when changing r.</summary>
    [Option("--alpha", "alpha of the collaborative weights; the update is scaled by alpha / r.", Min = 0, MinExclusive = true, Max = 1e6)]
    public double Alpha { get; set; } = CoraDefaults.Alpha;
    /// <summary>Dropout on the projection input of the low-rank term (0.05).</summary>
    [Option("--dropout", "Dropout on the projection input of the low-rank term.", Min = 0, Max = 0.99)]
    public double Dropout { get; set; } = CoraDefaults.Dropout;
    /// <summary>Projections that receive collaborative weights (q, k, v, o of every layer). gate and up also work.</summary>
    public string[] TargetModules { get; set; } = { "q", "k", "v", "o" };
    /// <summary>The collaborative query generator (<see cref="QueryGeneratorOptions.Paper"/> by default, or <see cref="QueryGeneratorOptions.Compact"/>).</summary>
    public QueryGeneratorOptions QueryGenerator { get; set; } = new();
    /// <summary>LoRA rank of the llm-lora and collm baselines (8, TALLRec).</summary>
    [Option("--lora-rank", "LoRA rank of the llm-lora and collm baselines.", Min = 1, Max = 1024)]
    public int LoraRank { get; set; } = CoraDefaults.LoraRank;
    /// <summary>LoRA alpha of the baselines (16).</summary>
    [Option("--lora-alpha", "LoRA alpha of the llm-lora and collm baselines.", Min = 0, MinExclusive = true, Max = 1e6)]
    public double LoraAlpha { get; set; } = CoraDefaults.LoraAlpha;
    /// <summary>The projections the baselines' LoRA adapts (q and v, as TALLRec and CoLLM): any of q, k, v, o, gate, up, down.</summary>
    public string[] LoraTargetModules { get; set; } = { "q", "v" };
    /// <summary>The prompt template and its words.</summary>
    public PromptOptions Prompt { get; set; } = new();
    /// <summary>Seed for every random initialisation (2023).</summary>
    public long Seed { get; set; } = CoraDefaults.Seed;

    /// <summary>Every out-of-range value, by option name.</summary>
    public IEnumerable<OptionError> Validate(string prefix = "")
    {
        var e = OptionChecks.Declared(this, prefix)
            .Concat((QueryGenerator ?? new()).Validate(prefix + nameof(QueryGenerator) + "."));
        if (!Enum.IsDefined(Method)) e = e.Append(new OptionError(prefix + nameof(Method), $"{(int)Method} is not a method; use Mf, LlmLora, Collm or Cora."));
        foreach (var (name, list) in new[] { (nameof(TargetModules), TargetModules), (nameof(LoraTargetModules), LoraTargetModules) })
        {
            if (list is null || list.Length == 0) { e = e.Append(new OptionError(prefix + name, "is empty; name at least one projection (q, k, v, o, gate, up, down).")); continue; }
            foreach (var m in list)
                if (!ProjectionSite.TryParseKind(m, out _)) e = e.Append(new OptionError(prefix + name, $"'{m}' is not a projection; use q, k, v, o, gate, up or down."));
        }
        return e;
    }
}
