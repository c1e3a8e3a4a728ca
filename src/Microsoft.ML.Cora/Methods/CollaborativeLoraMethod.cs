using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Prompting;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>CoRA: CF embeddings -> collaborative query generator -> per-sample weights A_b -> collaborative weights on the frozen LLM.</summary>
internal sealed class CollaborativeLoraMethod : MethodStrategy
{
    public static readonly CollaborativeLoraMethod Instance = new();

    /// <summary>The generator's input: concat(user embedding, item embedding), [B, 2k].</summary>
    public static Tensor CfToken(ICollaborativeModel cf, IReadOnlyList<Interaction> rows, long[] items) =>
        torch.cat(new[] { cf.UserEmbeddings(rows), cf.ItemEmbeddings(items) }, 1);

    public override TrainableParts Build(CoraModelOptions o, LanguageModel llm, int cfDim)
    {
        int d = llm.Config.HiddenSize;
        return new CollaborativeLoraParts(new QueryGenerator(o.QueryGenerator, 2 * cfDim, d, o.Rank, o.Seed),
            new CollaborativeWeights(llm.Model.Sites(o.TargetModules.Select(ProjectionSite.ParseKind)), d, o.Rank, o.Alpha, o.Dropout));
    }

    public override (Tensor embeds, IProjectionHook? hook) Prepare(TrainableParts parts, ICollaborativeModel cf, Tensor embeds, IReadOnlyList<Interaction> rows, long[] items, IReadOnlyList<TokenizedPrompt> prompts)
    {
        var own = (CollaborativeLoraParts)parts;
        var a = own.query_generator.Forward(CfToken(cf, rows, items));                          // [B, D, r]
        return (embeds, own.collaborative_weights.Bind(a));
    }
}
