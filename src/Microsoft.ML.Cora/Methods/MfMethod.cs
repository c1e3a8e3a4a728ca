using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Prompting;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>The CF model alone (MF): nothing to train beyond the CF stage, no LLM.</summary>
internal sealed class MfMethod : MethodStrategy
{
    public static readonly MfMethod Instance = new();
    public override bool UsesLlm => false;
    public override TrainableParts Build(CoraModelOptions options, LanguageModel llm, int cfDim) => new TrainableParts.None();
    public override (Tensor embeds, IProjectionHook? hook) Prepare(TrainableParts parts, ICollaborativeModel cf, Tensor embeds, IReadOnlyList<Interaction> rows, long[] items, IReadOnlyList<TokenizedPrompt> prompts) =>
        throw new InvalidOperationException("MF scores with the CF model alone.");
}
