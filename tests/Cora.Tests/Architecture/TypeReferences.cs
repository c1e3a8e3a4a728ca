using System.Reflection;
using System.Reflection.Emit;

namespace Cora.Tests.Architecture;

/// <summary>
/// Which types each type of an assembly uses: its base type and interfaces, fields, properties, method signatures, attributes'
/// types, and every type, method and field its method bodies name (read from the IL). Compiler-generated types (lambdas,
/// iterators, async state machines) count for the type that contains them.
/// </summary>
internal static class TypeReferences
{
    private static readonly Dictionary<short, OpCode> OpCodesByValue = typeof(OpCodes).GetFields(BindingFlags.Public | BindingFlags.Static)
        .Select(f => (OpCode)f.GetValue(null)!).ToDictionary(o => o.Value);

    private const BindingFlags All = BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.Instance | BindingFlags.Static | BindingFlags.DeclaredOnly;

    /// <summary>The outermost declaring type (where compiler-generated nested types belong).</summary>
    public static Type Owner(Type t)
    {
        while (t.DeclaringType is { } d) t = d;
        return t;
    }

    /// <summary>For every type of <paramref name="assembly"/>: the types it uses (generic arguments and element types unwrapped).</summary>
    public static Dictionary<Type, HashSet<Type>> Of(Assembly assembly)
    {
        var result = new Dictionary<Type, HashSet<Type>>();
        foreach (var type in assembly.GetTypes())
        {
            var owner = Owner(type);
            if (!result.TryGetValue(owner, out var uses)) result[owner] = uses = new HashSet<Type>();
            void Add(Type? t)
            {
                if (t is null) return;
                if (t.HasElementType) { Add(t.GetElementType()); return; }
                if (t.IsGenericParameter) return;
                if (t.IsGenericType && !t.IsGenericTypeDefinition) { foreach (var a in t.GetGenericArguments()) Add(a); Add(t.GetGenericTypeDefinition()); return; }
                uses.Add(t);
            }
            Add(type.BaseType);
            foreach (var i in type.GetInterfaces()) Add(i);
            foreach (var a in type.GetCustomAttributesData()) Add(a.AttributeType);
            foreach (var f in type.GetFields(All)) Add(f.FieldType);
            foreach (var p in type.GetProperties(All)) Add(p.PropertyType);
            foreach (var m in type.GetMethods(All).Cast<MethodBase>().Concat(type.GetConstructors(All)))
            {
                if (m is MethodInfo mi) Add(mi.ReturnType);
                foreach (var p in m.GetParameters()) Add(p.ParameterType);
                MethodBody? body;
                try { body = m.GetMethodBody(); } catch (Exception e) when (e is BadImageFormatException or InvalidOperationException) { continue; }
                if (body is null) continue;
                foreach (var l in body.LocalVariables) Add(l.LocalType);
                foreach (var t in BodyTypes(m, body.GetILAsByteArray()!)) Add(t);
            }
        }
        return result;
    }

    private static IEnumerable<Type> BodyTypes(MethodBase m, byte[] il)
    {
        var module = m.Module;
        Type[]? typeArgs = m.DeclaringType is { IsGenericType: true } d ? d.GetGenericArguments() : null;
        Type[]? methodArgs = m.IsGenericMethod ? m.GetGenericArguments() : null;
        for (int at = 0; at < il.Length;)
        {
            short value = il[at] == 0xFE ? (short)(0xFE00 | il[at + 1]) : il[at];
            at += il[at] == 0xFE ? 2 : 1;
            if (!OpCodesByValue.TryGetValue(value, out var op)) yield break;   // unknown opcode: stop reading this body
            int size = op.OperandType switch
            {
                OperandType.InlineNone => 0,
                OperandType.ShortInlineBrTarget or OperandType.ShortInlineI or OperandType.ShortInlineVar => 1,
                OperandType.InlineVar => 2,
                OperandType.InlineI8 or OperandType.InlineR => 8,
                OperandType.InlineSwitch => 4 + 4 * BitConverter.ToInt32(il, at),
                _ => 4,
            };
            if (op.OperandType is OperandType.InlineType or OperandType.InlineMethod or OperandType.InlineField or OperandType.InlineTok)
            {
                int token = BitConverter.ToInt32(il, at);
                MemberInfo? member = null;
                try { member = module.ResolveMember(token, typeArgs, methodArgs); }
                catch (Exception e) when (e is ArgumentException or BadImageFormatException or TypeLoadException or FileNotFoundException or MissingMemberException) { }
                switch (member)
                {
                    case Type t: yield return t; break;
                    case FieldInfo f: yield return f.DeclaringType!; yield return f.FieldType; break;
                    case MethodBase mb:
                        if (mb.DeclaringType is { } dt) yield return dt;
                        if (mb is MethodInfo { IsGenericMethod: true } gm) foreach (var a in gm.GetGenericArguments()) yield return a;
                        break;
                }
            }
            at += size;
        }
    }
}
