using Microsoft.ML.Cora.CollaborativeFiltering;
using Microsoft.ML.Cora.Methods;
using Microsoft.ML.Cora.Data;
using Microsoft.ML.Cora.Llm;
using Microsoft.ML.Cora.Prompting;
using TorchSharp;
using static TorchSharp.torch;

namespace Microsoft.ML.Cora.Methods;

/// <summary>CoLLM: CF embeddings mapped by an MLP into token embeddings at the prompt's &lt;UserID&gt;/&lt;TargetItemID&gt; slots, plus LoRA.</summary>
internal sealed class CollmMethod : MethodStrategy
{
    public static readonly CollmMethod Instance = new();

    public override PromptOptions Prompt(PromptOptions options) =>
        options.Template == PromptOptions.DefaultTemplate ? options with { Template = PromptOptions.CollmTemplate } : options;

    public override TrainableParts Build(CoraModelOptions o, LanguageModel llm, int cfDim) =>
        new CollmParts(LlmLoraMethod.Lora(o, llm), new CfTokenMapper(cfDim, llm.Config.HiddenSize));

    public override (Tensor embeds, IProjectionHook? hook) Prepare(TrainableParts parts, ICollaborativeModel cf, Tensor embeds, IReadOnlyList<Interaction> rows, long[] items, IReadOnlyList<TokenizedPrompt> prompts)
    {
        var own = (CollmParts)parts;
        var u = own.cf_token_mapper.call(cf.UserEmbeddings(rows));                  // [B, D]
        var it = own.cf_token_mapper.call(cf.ItemEmbeddings(items));                 // [B, D]
        var rowsIdx = new List<long>(); var posIdx = new List<long>(); var src = new List<Tensor>();
        for (int b = 0; b < prompts.Count; b++)
            foreach (var (pos, slot) in prompts[b].Slots)
            {
                rowsIdx.Add(b); posIdx.Add(pos);
                src.Add((slot == "<UserID>" ? u : it)[b]);
            }
        if (src.Count > 0)
            embeds = embeds.clone().index_put_(torch.stack(src).to(embeds.dtype), torch.tensor(rowsIdx.ToArray(), device: embeds.device), torch.tensor(posIdx.ToArray(), device: embeds.device));
        return (embeds, own.lora);
    }
}
