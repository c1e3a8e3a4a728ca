using Microsoft.ML.Cora.IO;
using System.Text;
using System.Text.Json.Nodes;

namespace Microsoft.ML.Cora.Llm;

/// <summary>Text to token ids for a LLaMA-family model.</summary>
public interface ITextTokenizer
{
    /// <summary>The beginning-of-sequence token id.</summary>
    int BosId { get; }
    /// <summary>The end-of-sequence token id.</summary>
    int EosId { get; }
    /// <summary>Encodes text; BOS is prepended only when <paramref name="addBos"/> is true.</summary>
    IReadOnlyList<int> Encode(string text, bool addBos);
    /// <summary>Decodes token ids to text.</summary>
    string Decode(IEnumerable<int> ids);
    /// <summary>Where the tokenizer came from (for error messages and model manifests).</summary>
    string Source { get; }
}
