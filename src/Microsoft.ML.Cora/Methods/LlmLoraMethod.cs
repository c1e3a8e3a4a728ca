using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Prompting;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>TALLRec: the same prompt, a plain trainable LoRA on the frozen LLM, no CF signal.</summary>
internal sealed class LlmLoraMethod : MethodStrategy
{
    public static readonly LlmLoraMethod Instance = new();
    public override TrainableParts Build(CoraModelOptions o, LanguageModel llm, int cfDim) => new LoraParts(Lora(o, llm));

    /// <summary>The plain LoRA on the projections named by <see cref="CoraModelOptions.LoraTargetModules"/> (also CoLLM's).</summary>
    internal static LoraWeights Lora(CoraModelOptions o, LanguageModel llm) =>
        new(llm.Model.Sites(o.LoraTargetModules.Select(ProjectionSite.ParseKind)), o.LoraRank, o.LoraAlpha, o.Dropout, o.Seed);
    public override (Tensor embeds, IProjectionHook? hook) Prepare(TrainableParts parts, ICollaborativeModel cf, Tensor embeds, IReadOnlyList<Interaction> rows, long[] items, IReadOnlyList<TokenizedPrompt> prompts) =>
        (embeds, ((LoraParts)parts).lora);
}
